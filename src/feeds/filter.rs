//! Which articles a peer gets (INN newsfeeds(5) semantics). Pure.

use crate::article;
use crate::config::PeerConfig;

/// Why an article is not sent to a peer (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The peer's identity is in Path: it has seen the article.
    InPath,
    /// No group matches the peer's pattern, or one is poisoned.
    Groups,
    Distribution,
    TooLarge,
}

/// Decides whether `peer` gets the stored article `bytes`.
pub fn check(peer: &PeerConfig, bytes: &[u8]) -> Result<(), Skip> {
    check_sized(peer, bytes, bytes.len())
}

/// `check` from the article's head (or all of it) and its whole size: a
/// body kept apart (`store::bodies`) need not be read to decide.
pub fn check_sized(peer: &PeerConfig, bytes: &[u8], size: usize) -> Result<(), Skip> {
    if peer.max_article_size.is_some_and(|max| size > max) {
        return Err(Skip::TooLarge);
    }
    let path = article::header_value(bytes, "Path").unwrap_or_default();
    let identity = peer.path_identity.as_str();
    if path
        .split('!')
        .any(|e| e.trim().eq_ignore_ascii_case(identity))
    {
        return Err(Skip::InPath);
    }
    let groups = article::header_value(bytes, "Newsgroups").unwrap_or_default();
    if !peer
        .send
        .wants(groups.split(',').map(str::trim).filter(|g| !g.is_empty()))
        && !wants_control(peer, bytes)
    {
        return Err(Skip::Groups);
    }
    if !peer.distributions.is_empty()
        && let Some(d) = article::header_value(bytes, "Distribution")
    {
        let values: Vec<&str> = d
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if !distributions_match(&peer.distributions, &values) {
            return Err(Skip::Distribution);
        }
    }
    Ok(())
}

/// Whether `peer` asks for the control messages filed where this one is
/// (`control.<verb>` or `control`), whatever their newsgroups: innd(8)
/// feeds a peer whose pattern names `control.cancel` every cancel. A
/// control message for groups the peer gets goes to it anyway, even past
/// a `!control,!control.*`.
fn wants_control(peer: &PeerConfig, bytes: &[u8]) -> bool {
    let Some(control) = article::header_value(bytes, "Control") else {
        return false;
    };
    let Some(verb) = article::control_verb(&control) else {
        return false;
    };
    (article::control_groups(&verb).iter()).any(|g| peer.send.wants([g.as_str()]))
}

/// An article with distributions `values` passes a peer's list when one of
/// them is listed and none is excluded with `!`.
fn distributions_match(list: &[String], values: &[&str]) -> bool {
    if values.is_empty() {
        return true;
    }
    let excluded = |v: &str| {
        list.iter().any(|d| {
            d.strip_prefix('!')
                .is_some_and(|x| x.eq_ignore_ascii_case(v))
        })
    };
    let listed = |v: &str| {
        list.iter()
            .any(|d| !d.starts_with('!') && (d == "*" || d.eq_ignore_ascii_case(v)))
    };
    let only_exclusions = list.iter().all(|d| d.starts_with('!'));
    !values.iter().any(|v| excluded(v)) && (only_exclusions || values.iter().any(|v| listed(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn peer(extra: &str) -> PeerConfig {
        let text = format!("[[peer]]\nname = \"p\"\npath_identity = \"peer.example\"\n{extra}\n");
        Config::parse(&text).expect("config").peers.remove(0)
    }

    fn art(path: &str, groups: &str, extra: &str) -> Vec<u8> {
        format!("Path: {path}\r\nNewsgroups: {groups}\r\n{extra}Subject: s\r\n\r\nbody\r\n")
            .into_bytes()
    }

    #[test]
    fn a_peer_s_timings_come_from_its_configuration() {
        let p = peer("answer_timeout_secs = 5\nretry_delay_secs = 7\nmax_backoff_secs = 9");
        let t = crate::feeds::outbound::FeedTimings::of(&p);
        assert_eq!(t.answer_timeout, std::time::Duration::from_secs(5));
        assert_eq!(t.retry_delay, std::time::Duration::from_secs(7));
        assert_eq!(t.max_backoff, std::time::Duration::from_secs(9));
    }

    #[test]
    fn a_peer_in_the_path_does_not_get_it_back() {
        let p = peer("");
        assert_eq!(
            check(&p, &art("us!Peer.Example!x", "a.b", "")),
            Err(Skip::InPath)
        );
        assert_eq!(check(&p, &art("us!other!x", "a.b", "")), Ok(()));
    }

    #[test]
    fn patterns_exclude_and_poison() {
        let p = peer("send = \"comp.*,!comp.secret.*,@alt.spam.*\"");
        assert_eq!(check(&p, &art("x", "comp.lang.rust", "")), Ok(()));
        assert_eq!(
            check(&p, &art("x", "comp.secret.plans", "")),
            Err(Skip::Groups)
        );
        assert_eq!(
            check(&p, &art("x", "comp.secret.plans,comp.misc", "")),
            Ok(())
        );
        assert_eq!(
            check(&p, &art("x", "comp.misc, alt.spam.x", "")),
            Err(Skip::Groups)
        );
        assert_eq!(check(&p, &art("x", "rec.arts", "")), Err(Skip::Groups));
    }

    #[test]
    fn control_messages_go_by_their_groups_or_by_the_control_groups() {
        let cancel = |groups| art("x", groups, "Control: cancel <a@b>\r\n");
        // Past !control.*, for a group the peer gets (as innd feeds them).
        let p = peer("send = \"comp.*,!control,!control.*\"");
        assert_eq!(check(&p, &cancel("comp.misc")), Ok(()));
        assert_eq!(check(&p, &cancel("rec.arts")), Err(Skip::Groups));
        // Every cancel to a peer that asks for control.cancel; only those.
        let p = peer("send = \"comp.*,control.cancel\"");
        assert_eq!(check(&p, &cancel("rec.arts")), Ok(()));
        let newgroup = art("x", "rec.arts", "Control: newgroup rec.arts\r\n");
        assert_eq!(check(&p, &newgroup), Err(Skip::Groups));
        assert_eq!(check(&p, &art("x", "rec.arts", "")), Err(Skip::Groups));
        // `control` takes every kind.
        let p = peer("send = \"comp.*,control\"");
        assert_eq!(check(&p, &newgroup), Ok(()));
    }

    #[test]
    fn size_and_distribution_limits() {
        let p = peer("max_article_size = 60\ndistributions = [\"world\", \"!local\"]");
        assert_eq!(check(&p, &art("x", "a.b", "")), Ok(()));
        let big = art("x", "a.b", &format!("X-Pad: {}\r\n", "p".repeat(100)));
        assert_eq!(check(&p, &big), Err(Skip::TooLarge));
        let p = peer("distributions = [\"world\", \"!local\"]");
        assert_eq!(
            check(&p, &art("x", "a.b", "Distribution: world\r\n")),
            Ok(())
        );
        assert_eq!(
            check(&p, &art("x", "a.b", "Distribution: local\r\n")),
            Err(Skip::Distribution)
        );
        assert_eq!(
            check(&p, &art("x", "a.b", "Distribution: fr\r\n")),
            Err(Skip::Distribution)
        );
        let p = peer("distributions = [\"!local\"]");
        assert_eq!(check(&p, &art("x", "a.b", "Distribution: fr\r\n")), Ok(()));
    }
}
