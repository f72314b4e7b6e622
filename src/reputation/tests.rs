use super::*;

fn suspicion(extra: &str) -> config::Suspicion {
    toml::from_str(extra).unwrap()
}

fn reputation(extra: &str) -> Reputation {
    Reputation::new(&suspicion(extra), 1000)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn attempt(username: u64, leaked_pair: bool, failed: Option<bool>) -> Observation {
    Observation {
        username: UsernameKey(username),
        leaked_pair,
        failed,
    }
}

#[test]
fn leaked_pairs_ban_at_the_threshold() {
    let mut r = reputation("");
    let t0 = Instant::now();
    let client = ip("192.0.2.1");
    assert_eq!(r.observe(client, attempt(1, true, None), t0), None);
    assert_eq!(r.observe(client, attempt(2, true, None), t0), None);
    let ban = r.observe(client, attempt(3, true, None), t0).unwrap();
    assert_eq!(ban.reason, BanReason::LeakedPairs);
    assert_eq!(ban.until, t0 + Duration::from_secs(300));
    assert_eq!(r.ban_of(client, t0 + Duration::from_secs(299)), Some(ban));
    assert_eq!(r.ban_of(client, t0 + Duration::from_secs(300)), None);
    assert_eq!(r.ban_of(ip("192.0.2.2"), t0), None);
}

#[test]
fn a_high_failure_ratio_bans_after_min_attempts() {
    let mut r = reputation("");
    let t0 = Instant::now();
    let client = ip("192.0.2.1");
    // Nine failures: not yet judged.
    for _ in 0..9 {
        assert_eq!(r.observe(client, attempt(1, false, Some(true)), t0), None);
    }
    let ban = r
        .observe(client, attempt(1, false, Some(true)), t0)
        .unwrap();
    assert_eq!(ban.reason, BanReason::Failures);
}

#[test]
fn a_client_that_mostly_succeeds_is_never_banned() {
    let mut r = reputation("");
    let t0 = Instant::now();
    let nat = ip("198.51.100.1");
    // 200 customers behind one address, one in ten mistyping.
    for i in 0..200u64 {
        let failed = Some(i % 10 == 0);
        assert_eq!(
            r.observe(nat, attempt(i * 7919, false, failed), t0),
            None,
            "attempt {i}"
        );
    }
}

#[test]
fn many_usernames_while_failing_is_a_spray() {
    let mut r = reputation("min_attempts = 100");
    let t0 = Instant::now();
    let client = ip("192.0.2.1");
    let mut ban = None;
    for i in 0..30u64 {
        ban = ban.or(r.observe(
            client,
            attempt(i * 0x9E37_79B9, false, Some(i % 3 != 0)),
            t0,
        ));
    }
    assert_eq!(ban.map(|b| b.reason), Some(BanReason::UsernameSpray));
}

#[test]
fn bans_escalate_along_the_ladder_and_are_forgotten_later() {
    let mut r = reputation(
        r#"ban = ["1m", "10m"]
ban_memory = "1h""#,
    );
    let client = ip("192.0.2.1");
    let mut now = Instant::now();
    let mut durations = Vec::new();
    let mut user = 0;
    for _ in 0..3 {
        let mut ban = None;
        while ban.is_none() {
            user += 1;
            ban = r.observe(client, attempt(user, true, None), now);
        }
        let ban = ban.unwrap();
        durations.push(ban.until - now);
        now = ban.until;
    }
    let m = Duration::from_secs(60);
    assert_eq!(durations, [m, 10 * m, 10 * m]);
    // Long after the last ban, the ladder starts again.
    now += Duration::from_secs(7200);
    let mut ban = None;
    while ban.is_none() {
        user += 1;
        ban = r.observe(client, attempt(user, true, None), now);
    }
    assert_eq!(ban.unwrap().until - now, m);
}

#[test]
fn the_window_slides() {
    let mut r = reputation(r#"window = "10m""#);
    let client = ip("192.0.2.1");
    let t0 = Instant::now();
    r.observe(client, attempt(1, true, None), t0);
    r.observe(client, attempt(2, true, None), t0);
    // 25 minutes later the old hits are out of the window.
    let later = t0 + Duration::from_secs(25 * 60);
    assert_eq!(r.observe(client, attempt(3, true, None), later), None);
    assert_eq!(r.observe(client, attempt(4, true, None), later), None);
    assert!(r.observe(client, attempt(5, true, None), later).is_some());
}

#[test]
fn a_customer_retrying_their_own_leaked_pair_is_never_banned() {
    let mut r = reputation("");
    let t0 = Instant::now();
    let client = ip("192.0.2.1");
    // Refused, then retried again and again; then the new password works.
    for _ in 0..20 {
        assert_eq!(r.observe(client, attempt(7, true, None), t0), None);
    }
    assert_eq!(r.observe(client, attempt(7, false, Some(false)), t0), None);
}

#[test]
fn manual_bans_of_addresses_and_networks() {
    let mut r = reputation("");
    let now = Instant::now();
    let hour = Duration::from_secs(3600);
    r.ban("203.0.113.7/32".parse().unwrap(), hour, now);
    r.ban("2001:db8:bad::/48".parse().unwrap(), hour, now);
    assert!(r.ban_of(ip("203.0.113.7"), now).is_some());
    assert!(r.ban_of(ip("2001:db8:bad:1::5"), now).is_some());
    assert!(r.ban_of(ip("2001:db8:beef::5"), now).is_none());
    assert_eq!(r.bans(now).len(), 2);
    assert!(r.unban("2001:db8:bad::/48".parse().unwrap()));
    assert!(r.ban_of(ip("2001:db8:bad:1::5"), now).is_none());
    assert!(r.unban("203.0.113.7/32".parse().unwrap()));
    assert!(!r.unban("203.0.113.7/32".parse().unwrap()));
    assert_eq!(r.expire(now), 0);
}

#[test]
fn the_client_table_never_exceeds_its_cap() {
    let mut r = Reputation::new(&suspicion(""), 100);
    let now = Instant::now();
    for i in 0..10_000u32 {
        let ip = IpAddr::from(i.to_be_bytes());
        r.observe(ip, attempt(1, false, Some(false)), now);
    }
    assert_eq!(r.tracked_clients(), 100);
}

#[test]
fn linear_counting_is_close_for_small_counts() {
    let mut bits = 0u64;
    for i in 0..8u64 {
        bits |= 1 << (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58);
    }
    let estimate = distinct(bits);
    assert!((6.0..=10.0).contains(&estimate), "{estimate}");
}
