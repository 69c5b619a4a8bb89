//! Social recall over the bundle's friend graph and stored engagements; the kernel is the
//! core's [`kan_core::social::recall`], the one `kan eval` scores. Engagements are aged from the
//! bundle's `params.reference_time` (the latest training interaction), so a bundle trained on
//! old data keeps its shape; a bundle without one is aged from the wall clock. Cold start: an
//! unknown user or one without friends gets no candidates.

use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::SocialSettings;
use kan_core::social::{self as kernel, Friends, Request};

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, Csr, parallel};
use crate::error::{Error, Result};
use crate::index::Hit;

pub struct Social {
    bundle: Arc<Bundle>,
    friends: Csr,
    strength: Vec<f32>,
    settings: SocialSettings,
}

impl Social {
    pub fn new(bundle: Arc<Bundle>, settings: &SocialSettings) -> Result<Self> {
        if bundle.history.is_none() {
            return Err(Error::Bundle(format!(
                "a social bundle needs {} (the friends' engagements)",
                files::USER_HISTORY
            )));
        }
        let file = bundle.tensors(files::FRIENDS)?;
        let users = bundle.users.len();
        let friends = file.csr(users, "friends", users)?;
        let strength = parallel(&file, "strength", file.f32_1d("strength")?, &friends)?;
        Ok(Self {
            bundle,
            friends,
            strength,
            settings: settings.clone(),
        })
    }
}

impl Strategy for Social {
    fn name(&self) -> &'static str {
        "social"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.bundle.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let Some(history) = self.bundle.history.as_ref() else {
                return Ok(Vec::new());
            };
            let excluded: Vec<u32> = query.exclude.iter().copied().collect();
            let graph = Friends {
                friends: self.friends.view(),
                strength: &self.strength,
            };
            let request = Request {
                user: query.user,
                history: &query.history,
                excluded: &excluded,
                now: kan_core::clock::now(self.bundle.reference_time(), query.now),
                k: query.k,
            };
            Ok(kernel::recall(
                graph,
                history.engagements(),
                &self.settings,
                request,
            ))
        })
    }
}
