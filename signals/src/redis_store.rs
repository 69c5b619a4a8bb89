//! The Redis store. Layout (every key under a prefix, `kan:` by default):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{p}h:{user}` | list | the user's recent item ids, newest first, at most [`HISTORY_MAX`] |
//! | `{p}e:{user}` | list | `"{ts_ms} {weight} {item}"`, newest first, at most [`ENGAGEMENTS_MAX`] |
//! | `{p}f:{user}` | set | the users `user` follows |
//! | `{p}t:{segment}:{minute}` | sorted set | item → weighted count in that minute; expires after the longest window |
//! | `{p}id:{event id}` | string | the event was applied; expires after [`IDEMPOTENCE_TTL`] |
//!
//! A batch is applied by one Lua script, so it is atomic (all or nothing, never a half batch)
//! and the idempotence check and the writes cannot interleave with another batch. The reply
//! comes after Redis has logged the script's effects; with `appendonly yes` and
//! `appendfsync always` that is after the fsync, so an acknowledged event survives a crash of
//! the server. Keys are built inside the script, so this layout assumes one Redis (or a
//! primary with replicas), not Redis Cluster.

use std::time::Duration;

use futures::future::BoxFuture;
use kan_api::events::{Action, Event};
use kan_core::fresh;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, Script};

use crate::{
    Appended, ENGAGEMENTS_MAX, Engagement, Error, HISTORY_MAX, IDEMPOTENCE_TTL, Result,
    SignalStore, Window, in_time_order,
};

const APPEND: &str = r#"
local cfg = cjson.decode(ARGV[1])
local events = cjson.decode(ARGV[2])
local p = cfg.prefix
local stored = 0
for _, e in ipairs(events) do
  if redis.call('SET', p .. 'id:' .. e.id, '1', 'NX', 'PX', cfg.id_ttl_ms) then
    stored = stored + 1
    if e.kind == 'follow' then
      redis.call('SADD', p .. 'f:' .. e.user, e.target)
    elseif e.kind == 'unfollow' then
      redis.call('SREM', p .. 'f:' .. e.user, e.target)
    else
      local h = p .. 'h:' .. e.user
      redis.call('LPUSH', h, e.item)
      redis.call('LTRIM', h, 0, cfg.history_max - 1)
      local g = p .. 'e:' .. e.user
      redis.call('LPUSH', g, e.ts .. ' ' .. e.weight .. ' ' .. e.item)
      redis.call('LTRIM', g, 0, cfg.engagements_max - 1)
      for _, s in ipairs(e.segments) do
        local t = p .. 't:' .. s .. ':' .. e.bucket
        redis.call('ZINCRBY', t, e.weight, e.item)
        redis.call('PEXPIRE', t, cfg.trend_ttl_ms)
      end
    end
  end
end
return stored
"#;

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Overrides the URL's password (from a Secret, never from a ConfigMap).
    pub password: Option<String>,
    /// Longest wait for a connection; a store that is down costs a request at most this.
    pub connect_timeout: Duration,
    /// Longest wait for an answer.
    pub response_timeout: Duration,
    /// Prefix of every key.
    pub prefix: String,
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            connect_timeout: Duration::from_millis(250),
            response_timeout: Duration::from_millis(500),
            prefix: "kan:".to_string(),
        }
    }
}

/// See the module docs.
pub struct RedisStore {
    connection: ConnectionManager,
    script: Script,
    options: RedisOptions,
}

impl std::fmt::Debug for RedisStore {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.options.prefix)
            .finish_non_exhaustive()
    }
}

/// The error of a failed call, its text cut short (a failed pipeline lists every command).
fn unavailable(e: redis::RedisError) -> Error {
    let mut text = e.to_string();
    if text.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    if e.is_timeout() {
        Error::Unavailable(format!("timed out: {text}"))
    } else {
        Error::Unavailable(text)
    }
}

impl RedisStore {
    /// Connects lazily: a Redis that is down at start-up is not an error (requests answer from
    /// the bundle, degraded, until it is back). A malformed URL is.
    pub fn new(options: RedisOptions) -> Result<Self> {
        let mut info =
            options.url.as_str().into_connection_info().map_err(|e| {
                Error::Config(format!("the Redis URL is not valid ({:?})", e.kind()))
            })?;
        if let Some(password) = &options.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info)
            .map_err(|e| Error::Config(format!("the Redis URL is not valid ({:?})", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            connection,
            script: Script::new(APPEND),
            options,
        })
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}:{rest}", self.options.prefix)
    }

    /// Bounds every call: the connection manager's own timeouts cover one attempt, this one
    /// the reconnects too.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        let limit = self.options.connect_timeout + self.options.response_timeout;
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(Error::Timeout(limit.as_millis() as u64)),
        }
    }
}

fn event_json(e: &Event) -> serde_json::Value {
    let kind = match e.action {
        Action::Follow => "follow",
        Action::Unfollow => "unfollow",
        _ => "engagement",
    };
    serde_json::json!({
        "id": e.id,
        "kind": kind,
        "user": e.user_id,
        "target": e.target,
        "item": e.item_id,
        // Strings: Lua would print large numbers as 1.7e+12.
        "ts": e.ts.to_string(),
        "weight": e.effective_weight().to_string(),
        "bucket": fresh::bucket_of(e.ts).to_string(),
        "segments": e.segments(),
    })
}

/// `"{ts_ms} {weight} {item}"` → an engagement; malformed entries are skipped by the caller.
fn parse_engagement(entry: &str) -> Option<Engagement> {
    let mut parts = entry.splitn(3, ' ');
    let ts_ms = parts.next()?.parse().ok()?;
    let weight = parts.next()?.parse().ok()?;
    let item_id = parts.next()?.to_string();
    Some(Engagement {
        item_id,
        ts_ms,
        weight,
    })
}

impl SignalStore for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn append<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Appended>> {
        Box::pin(async move {
            let config = serde_json::json!({
                "prefix": self.options.prefix,
                "id_ttl_ms": IDEMPOTENCE_TTL.as_millis() as u64,
                "history_max": HISTORY_MAX,
                "engagements_max": ENGAGEMENTS_MAX,
                "trend_ttl_ms": fresh::MAX_WINDOW_MS + fresh::BUCKET_MS,
            });
            let batch: Vec<serde_json::Value> =
                in_time_order(events).into_iter().map(event_json).collect();
            let batch = serde_json::Value::Array(batch).to_string();
            let mut connection = self.connection.clone();
            let stored: usize = self
                .bounded(
                    self.script
                        .arg(config.to_string())
                        .arg(batch)
                        .invoke_async(&mut connection),
                )
                .await?;
            Ok(Appended {
                stored,
                duplicates: events.len().saturating_sub(stored),
            })
        })
    }

    fn history<'a>(&'a self, user: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let mut connection = self.connection.clone();
            self.bounded(
                redis::cmd("LRANGE")
                    .arg(self.key("h", user))
                    .arg(0)
                    .arg(limit as i64 - 1)
                    .query_async(&mut connection),
            )
            .await
        })
    }

    fn following<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            self.bounded(
                redis::cmd("SMEMBERS")
                    .arg(self.key("f", user))
                    .query_async(&mut connection),
            )
            .await
        })
    }

    fn engagements<'a>(
        &'a self,
        users: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<Engagement>>>> {
        Box::pin(async move {
            if users.is_empty() || limit == 0 {
                return Ok(vec![Vec::new(); users.len()]);
            }
            let mut pipe = redis::pipe();
            for user in users {
                pipe.cmd("LRANGE")
                    .arg(self.key("e", user))
                    .arg(0)
                    .arg(limit as i64 - 1);
            }
            let mut connection = self.connection.clone();
            let lists: Vec<Vec<String>> = self.bounded(pipe.query_async(&mut connection)).await?;
            Ok(lists
                .into_iter()
                .map(|list| list.iter().filter_map(|e| parse_engagement(e)).collect())
                .collect())
        })
    }

    fn trending<'a>(
        &'a self,
        segment: &'a str,
        now_ms: i64,
        window: Window,
        k: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>>> {
        Box::pin(async move {
            let buckets = fresh::window(now_ms, window.window_ms, window.half_life_ms);
            let mut cmd = redis::cmd("ZUNION");
            cmd.arg(buckets.len());
            for (bucket, _) in &buckets {
                cmd.arg(self.key("t", &format!("{segment}:{bucket}")));
            }
            cmd.arg("WEIGHTS");
            for (_, weight) in &buckets {
                cmd.arg(*weight);
            }
            cmd.arg("WITHSCORES");
            let mut connection = self.connection.clone();
            let mut items: Vec<(String, f64)> =
                self.bounded(cmd.query_async(&mut connection)).await?;
            items.retain(|(_, s)| s.is_finite() && *s > 0.0);
            fresh::rank(&mut items);
            items.truncate(k);
            Ok(items)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_engagement_entries_read_back_and_garbage_is_skipped() {
        assert_eq!(
            parse_engagement("1790000000000 2 item with spaces"),
            Some(Engagement {
                item_id: "item with spaces".into(),
                ts_ms: 1_790_000_000_000,
                weight: 2.0
            })
        );
        assert_eq!(parse_engagement("x 2 i"), None);
        assert_eq!(parse_engagement("1 2"), None);
    }

    #[tokio::test]
    async fn a_malformed_url_is_a_config_error_and_the_password_is_never_printed() {
        let err = RedisStore::new(RedisOptions::new("not a url")).expect_err("refused");
        assert_eq!(err.metric_label(), "config");
        let mut options = RedisOptions::new("redis://127.0.0.1:1");
        options.password = Some("hunter2".into());
        let store = RedisStore::new(options).expect("lazy: no connection yet");
        assert!(!format!("{store:?}").contains("hunter2"));
    }
}
