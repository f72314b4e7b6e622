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

/// Tries leaked pairs from `client` until it is banned; returns what the
/// ban escalated to.
fn ban_and_escalate(r: &mut Reputation, client: IpAddr, now: Instant) -> Option<(IpNet, Ban)> {
    let mut user = 0;
    loop {
        user += 1;
        if let Some(ban) = r.observe(client, attempt(user, true, None), now) {
            return r.escalate(client, ban, now);
        }
        assert!(user < 100, "never banned");
    }
}

#[test]
fn an_ipv6_client_is_its_network_for_suspicion_and_bans() {
    let mut r = reputation("");
    let t0 = Instant::now();
    // One leaked pair from each of three addresses of one /64.
    for (user, host) in [(1, "::1"), (2, "::2")] {
        let client = ip(&format!("2001:db8:1:2{host}"));
        assert_eq!(r.observe(client, attempt(user, true, None), t0), None);
    }
    let ban = r.observe(ip("2001:db8:1:2::3"), attempt(3, true, None), t0);
    assert_eq!(ban.map(|b| b.reason), Some(BanReason::LeakedPairs));
    assert!(r.ban_of(ip("2001:db8:1:2:ffff::9"), t0).is_some());
    assert!(r.ban_of(ip("2001:db8:1:3::1"), t0).is_none());
    let listed: Vec<IpNet> = r.bans(t0).into_iter().map(|(t, _)| t).collect();
    assert_eq!(listed, ["2001:db8:1:2::/64".parse::<IpNet>().unwrap()]);
    assert!(r.unban("2001:db8:1:2::/64".parse().unwrap()));
    assert!(r.ban_of(ip("2001:db8:1:2::3"), t0).is_none());

    // Keyed per address, the same rotation is three clients with one hit each.
    let mut r = reputation("ipv6_prefix = 128");
    for (user, host) in [(1, "::1"), (2, "::2"), (3, "::3")] {
        let client = ip(&format!("2001:db8:1:2{host}"));
        assert_eq!(r.observe(client, attempt(user, true, None), t0), None);
    }
}

#[test]
fn bans_of_several_addresses_of_a_network_ban_the_network() {
    let mut r = reputation("");
    let t0 = Instant::now();
    assert_eq!(ban_and_escalate(&mut r, ip("198.51.100.1"), t0), None);
    assert_eq!(ban_and_escalate(&mut r, ip("198.51.100.2"), t0), None);
    let later = t0 + Duration::from_secs(60);
    let (net, ban) = ban_and_escalate(&mut r, ip("198.51.100.3"), later).unwrap();
    assert_eq!(net, "198.51.100.0/24".parse::<IpNet>().unwrap());
    assert_eq!(ban.reason, BanReason::SubnetEscalation);
    assert_eq!(ban.until, later + Duration::from_secs(300));
    assert_eq!(r.ban_of(ip("198.51.100.200"), later), Some(ban));
    assert_eq!(r.ban_of(ip("198.51.101.1"), later), None);
    assert!(r.bans(later).contains(&(net, ban)));

    // Lifting it forgets the record: the next ban is one address's.
    assert!(r.unban(net));
    assert_eq!(r.ban_of(ip("198.51.100.200"), later), None);
    assert_eq!(ban_and_escalate(&mut r, ip("198.51.100.4"), later), None);
}

#[test]
fn restored_bans_refuse_where_they_were_imposed() {
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(60);
    let escalation = Ban {
        until,
        reason: BanReason::SubnetEscalation,
    };
    let net: IpNet = "198.51.100.0/24".parse().unwrap();
    let v6: IpNet = "2001:db8:1:2::/64".parse().unwrap();
    let failures = Ban {
        until,
        reason: BanReason::Failures,
    };
    for rules in ["", "subnet_ban = \"off\""] {
        let mut r = reputation(rules);
        r.put(net, escalation, t0);
        r.put(v6, failures, t0);
        assert_eq!(
            r.ban_of(ip("198.51.100.9"), t0),
            Some(escalation),
            "{rules}"
        );
        assert_eq!(
            r.ban_of(ip("2001:db8:1:2::9"), t0),
            Some(failures),
            "{rules}"
        );
        assert_eq!(r.ban_of(ip("198.51.101.9"), t0), None, "{rules}");
    }
}

#[test]
fn bans_spread_wider_than_the_period_do_not_escalate() {
    let mut r = reputation("subnet_ban = { within = \"10m\" }");
    let t0 = Instant::now();
    let minutes = |m: u64| t0 + Duration::from_secs(60 * m);
    assert_eq!(
        ban_and_escalate(&mut r, ip("198.51.100.1"), minutes(0)),
        None
    );
    assert_eq!(
        ban_and_escalate(&mut r, ip("198.51.100.2"), minutes(6)),
        None
    );
    assert_eq!(
        ban_and_escalate(&mut r, ip("198.51.100.3"), minutes(12)),
        None
    );
    // The second, the third and a fourth are within ten minutes.
    assert!(ban_and_escalate(&mut r, ip("198.51.100.4"), minutes(13)).is_some());
}

#[test]
fn a_network_whose_customers_log_in_is_not_escalated() {
    let mut r = reputation("");
    let t0 = Instant::now();
    // A carrier NAT: ten customers log in from its addresses.
    for i in 0..10u8 {
        let customer = IpAddr::from([198, 51, 100, 100 + i]);
        r.observe(customer, attempt(u64::from(i), false, Some(false)), t0);
    }
    for last in 1..=5 {
        let attacker = IpAddr::from([198, 51, 100, last]);
        assert_eq!(ban_and_escalate(&mut r, attacker, t0), None);
        assert!(r.ban_of(attacker, t0).is_some());
    }
    assert_eq!(r.ban_of(ip("198.51.100.200"), t0), None);

    // Without the customers, the same bans escalate.
    let mut r = reputation("subnet_ban = { nat_successes = 11 }");
    for i in 0..10u8 {
        let customer = IpAddr::from([198, 51, 100, 100 + i]);
        r.observe(customer, attempt(u64::from(i), false, Some(false)), t0);
    }
    let escalated =
        (1..=3).find_map(|last| ban_and_escalate(&mut r, IpAddr::from([198, 51, 100, last]), t0));
    assert!(escalated.is_some());
}

#[test]
fn escalation_can_be_turned_off() {
    let mut r = reputation("subnet_ban = \"off\"");
    let t0 = Instant::now();
    for last in 1..=5 {
        let attacker = IpAddr::from([198, 51, 100, last]);
        assert_eq!(ban_and_escalate(&mut r, attacker, t0), None);
    }
}
