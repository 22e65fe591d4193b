//! Access rules (`[[access]]` in the configuration): which rule applies to
//! a connection, what it may read and post, and the per-user or
//! per-address posting rate and download volume.
//!
//! A reader never learns of a group or article it may not read: GROUP says
//! 411 and ARTICLE by message-id 430, exactly as if it did not exist.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Session;
use crate::article;
use crate::config::{AccessRule, Config};
use crate::store::GroupInfo;
use crate::wire::codes;
use crate::wire::response::Response;

/// The rule for a client at `ip` logged in as `user`: the first that
/// applies, or everything open when none does.
pub fn rule_for(config: &Config, ip: std::net::IpAddr, user: Option<&str>) -> AccessRule {
    config
        .access
        .iter()
        .find(|r| r.applies(ip, user))
        .cloned()
        .unwrap_or_else(AccessRule::open)
}

/// Counters for rate and volume limits, keyed by user (when logged in) or
/// address, each over a fixed window.
#[derive(Default)]
pub struct Usage {
    posts: Mutex<HashMap<String, (Instant, u64)>>,
    downloads: Mutex<HashMap<String, (Instant, u64)>>,
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// Adds `amount` to `key`'s count in the current window if that stays
/// within `limit`; false (and nothing added) when it would not.
fn take(
    map: &Mutex<HashMap<String, (Instant, u64)>>,
    key: &str,
    window: Duration,
    amount: u64,
    limit: u64,
) -> bool {
    let Ok(mut map) = map.lock() else {
        return true;
    };
    if map.len() > 100_000 {
        map.retain(|_, (since, _)| since.elapsed() < window);
    }
    let entry = map.entry(key.to_owned()).or_insert((Instant::now(), 0));
    if entry.0.elapsed() >= window {
        *entry = (Instant::now(), 0);
    }
    if entry.1 + amount > limit {
        return false;
    }
    entry.1 += amount;
    true
}

impl Usage {
    /// Counts one post; false when the rule's rate is used up.
    pub fn post(&self, key: &str, per_minute: u32) -> bool {
        per_minute == 0 || take(&self.posts, key, MINUTE, 1, u64::from(per_minute))
    }

    /// Counts `bytes` served; false when the day's volume is used up.
    pub fn download(&self, key: &str, bytes: u64, per_day: u64) -> bool {
        per_day == 0 || take(&self.downloads, key, DAY, bytes, per_day)
    }
}

impl Session {
    /// Recomputes the rule in force (at start and after logging in).
    pub(super) fn refresh_rule(&mut self) {
        self.rule = rule_for(self.config(), self.peer.ip(), self.user.as_deref());
    }

    /// Whom limits are counted for: the user, or the address.
    pub(super) fn usage_key(&self) -> String {
        match &self.user {
            Some(u) => format!("user:{u}"),
            None => format!("ip:{}", self.peer.ip()),
        }
    }

    pub(super) fn may_read(&self, group: &str) -> bool {
        self.rule.read.0.matches(group)
    }

    /// Whether the rule lets this client read every group (the common
    /// case, where by-message-id look-ups need not check groups).
    pub(super) fn reads_everything(&self) -> bool {
        self.rule.read.0.as_str() == "*"
    }

    pub(super) fn may_post_to(&self, group: &str) -> bool {
        self.rule.post.0.matches(group)
    }

    /// Whether this connection may use IHAVE, CHECK, TAKETHIS and MODE
    /// STREAM: it comes from a configured peer, and its access rule does
    /// not withhold transit.
    pub(super) fn transit_allowed(&self) -> bool {
        self.peer_config.is_some() && self.rule.transit
    }

    /// The answer to a transit command this connection may not use: 480
    /// while it has not logged in and some peer is known by its login
    /// (`[[peer]] login`: logging in might help), 502 otherwise.
    pub(super) fn transit_refused(&self) -> Response {
        if self.user.is_none() && self.config().peers.iter().any(|p| p.login.is_some()) {
            Response::new(codes::AUTH_REQUIRED, "Transit service needs a peer's login")
        } else {
            Response::new(
                codes::NOT_PERMITTED,
                "Transit service not permitted on this connection",
            )
        }
    }

    /// Whether the rule lets this client post at all.
    pub(super) fn may_post_anywhere(&self) -> bool {
        self.config().server.posting && self.rule.post.0.as_str() != "!*"
    }

    /// Whether a stored article is in a group this client may read (its
    /// Xref names the groups we carry it in).
    pub(super) fn may_read_article(&self, bytes: &[u8]) -> bool {
        article::xref_entries(bytes)
            .iter()
            .any(|(g, _)| self.may_read(g))
    }

    /// `limits.max_header_count`, for posted and relayed articles alike.
    pub(super) fn check_header_count(&self, article: &article::Prepared) -> Result<(), String> {
        let max = self.config().limits.max_header_count;
        let count = article.header_count();
        if count > max {
            return Err(format!("too many header fields ({count}, limit {max})"));
        }
        Ok(())
    }

    /// The groups of `groups` this client may see.
    pub(super) fn readable(&self, groups: Vec<GroupInfo>) -> Vec<GroupInfo> {
        groups
            .into_iter()
            .filter(|g| self.may_read(&g.name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rule_that_applies_wins() {
        let config = Config::parse(
            "[[access]]\nnetworks = [\"10.0.0.0/8\"]\ndeny = true\n\
             [[access]]\nusers = \"staff.*\"\nread = \"*\"\n\
             [[access]]\nread = \"local.*\"\npost = \"\"\n",
        )
        .expect("config");
        let ip = |s: &str| s.parse().expect("ip");
        assert!(rule_for(&config, ip("10.1.2.3"), None).deny);
        let anon = rule_for(&config, ip("192.0.2.1"), None);
        assert!(!anon.deny);
        assert!(anon.read.0.matches("local.test"));
        assert!(!anon.read.0.matches("comp.lang"));
        assert!(!anon.post.0.matches("local.test"));
        let staff = rule_for(&config, ip("192.0.2.1"), Some("staff.ann"));
        assert!(staff.read.0.matches("comp.lang"));
        let open = rule_for(&Config::default(), ip("192.0.2.1"), None);
        assert!(open.read.0.matches("anything") && open.post.0.matches("anything"));
    }

    #[test]
    fn limits_count_within_their_window() {
        let u = Usage::default();
        assert!(u.post("a", 2) && u.post("a", 2));
        assert!(!u.post("a", 2));
        assert!(u.post("b", 2));
        assert!(u.post("a", 0));
        assert!(u.download("a", 600, 1000));
        assert!(!u.download("a", 600, 1000));
        assert!(u.download("a", 400, 1000));
    }
}
