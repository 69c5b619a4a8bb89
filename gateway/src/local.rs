//! Queues in this process. When the gateway and its workers run in one process (`kan up`), a
//! queue call can go to the worker's router directly instead of through a loopback socket: the
//! request and the answer are the same headers and bytes as over HTTP, and the worker's
//! admission, metrics and error bodies all apply; only the socket and the HTTP/1 codec on both
//! ends are skipped. Queues are found by the authority (`host:port`) of their endpoint, so the
//! routing config stays the same and a queue that is not registered is called over HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;

/// The in-process queues, by endpoint authority; cheap to clone (clones share the registry).
#[derive(Clone, Default)]
pub struct LocalQueues {
    routers: Arc<ArcSwap<HashMap<String, Router>>>,
}

impl LocalQueues {
    /// Calls to endpoints at `authority` (e.g. `127.0.0.1:40123`) go to `router` from now on.
    pub fn register(&self, authority: &str, router: Router) {
        self.routers.rcu(|routers| {
            let mut next = HashMap::clone(routers);
            next.insert(authority.to_string(), router.clone());
            next
        });
    }

    /// Calls to `authority` go over HTTP again (the worker stopped).
    pub fn unregister(&self, authority: &str) {
        self.routers.rcu(|routers| {
            let mut next = HashMap::clone(routers);
            next.remove(authority);
            next
        });
    }

    /// The router registered for `authority`, if any.
    pub fn get(&self, authority: &str) -> Option<Router> {
        self.routers.load().get(authority).cloned()
    }
}

impl std::fmt::Debug for LocalQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routers = self.routers.load();
        let mut authorities: Vec<&String> = routers.keys().collect();
        authorities.sort();
        f.debug_struct("LocalQueues")
            .field("authorities", &authorities)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_routers_are_found_by_authority_until_unregistered() {
        let local = LocalQueues::default();
        let shared = local.clone();
        local.register("127.0.0.1:1", Router::new());
        assert!(shared.get("127.0.0.1:1").is_some());
        assert!(shared.get("127.0.0.1:2").is_none());
        assert_eq!(
            format!("{shared:?}"),
            "LocalQueues { authorities: [\"127.0.0.1:1\"] }"
        );
        local.unregister("127.0.0.1:1");
        assert!(shared.get("127.0.0.1:1").is_none());
    }
}
