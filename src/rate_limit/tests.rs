use super::*;
use governor::clock::FakeRelativeClock;

fn limits(toml: &str) -> config::Limits {
    toml::from_str(toml).unwrap()
}

fn keys(ip: &str, username: u64) -> AttemptKeys {
    AttemptKeys {
        client: ClientIp(ip.parse().unwrap()),
        username: UsernameKey(username),
        fingerprint: None,
        known_device: false,
    }
}

#[test]
fn each_limit_trips_at_its_rate_and_recovers() {
    let clock = FakeRelativeClock::default();
    let l = Limiters::with_clock(
        &limits(r#"ip = { rate = "6/min", burst = 2 }"#),
        100,
        clock.clone(),
    );
    let a = keys("192.0.2.1", 1);
    assert!(l.admit(&a).is_ok());
    assert!(l.admit(&a).is_ok());
    let throttled = l.admit(&a).unwrap_err();
    assert_eq!(throttled.limit, LimitKind::Ip);
    assert_eq!(throttled.retry_after, Duration::from_secs(10));
    // Another address is not affected.
    assert!(l.admit(&keys("192.0.2.2", 1)).is_ok());
    clock.advance(Duration::from_secs(10));
    assert!(l.admit(&a).is_ok());
    assert!(l.admit(&a).is_err());
}

#[test]
fn rotation_inside_a_subnet_is_one_key() {
    let clock = FakeRelativeClock::default();
    let l = Limiters::with_clock(
        &limits(r#"subnet = { rate = "1/min", burst = 3 }"#),
        100,
        clock,
    );
    for i in 1..=3 {
        assert!(l.admit(&keys(&format!("2001:db8:0:1::{i}"), 0)).is_ok());
    }
    let throttled = l.admit(&keys("2001:db8:0:1:ffff::9", 0)).unwrap_err();
    assert_eq!(throttled.limit, LimitKind::Subnet);
    assert!(l.admit(&keys("2001:db8:0:2::1", 0)).is_ok(), "another /64");
}

#[test]
fn username_and_global_limits() {
    let clock = FakeRelativeClock::default();
    let l = Limiters::with_clock(
        &limits(
            r#"
            username = { rate = "1/min", burst = 1 }
            global = { rate = "1/s", burst = 3 }
            "#,
        ),
        100,
        clock,
    );
    assert!(l.admit(&keys("192.0.2.1", 7)).is_ok());
    assert_eq!(
        l.admit(&keys("192.0.2.2", 7)).unwrap_err().limit,
        LimitKind::Username
    );
    assert!(l.admit(&keys("192.0.2.3", 8)).is_ok());
    assert!(l.admit(&keys("192.0.2.4", 9)).is_ok());
    assert_eq!(
        l.admit(&keys("192.0.2.5", 10)).unwrap_err().limit,
        LimitKind::Global
    );
}

#[test]
fn a_refunded_attempt_costs_nothing() {
    let clock = FakeRelativeClock::default();
    let l = Limiters::with_clock(
        &limits(
            r#"
            ip = { rate = "1/min", burst = 2 }
            subnet = { rate = "1/min", burst = 2 }
            username = { rate = "1/min", burst = 2 }
            "#,
        ),
        100,
        clock,
    );
    // A hundred logins that succeed, one after the other: never limited.
    let a = keys("192.0.2.1", 1);
    for _ in 0..100 {
        assert!(l.admit(&a).is_ok());
        l.refund(&a);
    }
    // Failures are charged: the burst, then a refusal.
    assert!(l.admit(&a).is_ok());
    assert!(l.admit(&a).is_ok());
    assert_eq!(l.admit(&a).unwrap_err().limit, LimitKind::Ip);
}

/// A leaked pair refused again and again leaves the username its cells
/// for the new password; the client's own stay charged.
#[test]
fn a_username_refund_gives_back_only_the_username_cell() {
    let clock = FakeRelativeClock::default();
    let l = Limiters::with_clock(
        &limits(
            r#"
            ip = { rate = "1/min", burst = 3 }
            username = { rate = "1/min", burst = 2 }
            "#,
        ),
        100,
        clock,
    );
    let a = keys("192.0.2.1", 1);
    for _ in 0..3 {
        assert!(l.admit(&a).is_ok());
        l.refund_username(&a);
    }
    assert_eq!(l.admit(&a).unwrap_err().limit, LimitKind::Ip);
    let b = keys("192.0.2.2", 1);
    assert!(l.admit(&b).is_ok());
    assert!(l.admit(&b).is_ok());
    assert_eq!(l.admit(&b).unwrap_err().limit, LimitKind::Username);
}

/// Bots spending an account's attempts from many addresses do not lock
/// its owner's browser out; the owner's own failures do not spend them, and
/// a refund gives back nothing the owner never took.
#[test]
fn the_username_limit_spares_the_accounts_known_device() {
    let clock = FakeRelativeClock::default();
    let l = Limiters::with_clock(
        &limits(
            r#"
            ip = { rate = "1/min", burst = 2 }
            username = { rate = "1/min", burst = 2 }
            "#,
        ),
        100,
        clock,
    );
    assert!(l.admit(&keys("192.0.2.1", 1)).is_ok());
    assert!(l.admit(&keys("192.0.2.2", 1)).is_ok());
    let bot = keys("192.0.2.3", 1);
    assert_eq!(l.admit(&bot).unwrap_err().limit, LimitKind::Username);
    let owner = AttemptKeys {
        known_device: true,
        ..keys("198.51.100.9", 1)
    };
    assert!(l.admit(&owner).is_ok(), "a success");
    l.refund(&owner);
    assert!(l.admit(&owner).is_ok(), "a leaked pair refused");
    l.refund_username(&owner);
    assert!(l.admit(&owner).is_ok(), "a mistyped password");
    // The owner's browser is still one client: its own address is limited.
    assert_eq!(l.admit(&owner).unwrap_err().limit, LimitKind::Ip);
    // The refunds gave the username nothing the owner had not taken.
    assert_eq!(l.admit(&bot).unwrap_err().limit, LimitKind::Username);
}

#[test]
fn a_fingerprint_is_one_key_across_addresses_and_charged_by_failures() {
    let clock = FakeRelativeClock::default();
    let l = Limiters::with_clock(
        &limits(r#"fingerprint = { rate = "1/min", burst = 3 }"#),
        100,
        clock,
    );
    let tool = Ja4::parse("t13d1516h2_8daaf6152771_02713d6af862");
    let browser = Ja4::parse("t13d1516h2_8daaf6152771_e5627efa2ab1");
    let from = |i: u8, fingerprint| AttemptKeys {
        fingerprint,
        ..keys(&format!("198.51.100.{i}"), u64::from(i))
    };
    // A success costs nothing, from any address.
    for i in 0..10 {
        assert!(l.admit(&from(i, tool)).is_ok());
        l.refund(&from(i, tool));
    }
    for i in 10..13 {
        assert!(l.admit(&from(i, tool)).is_ok());
    }
    let throttled = l.admit(&from(13, tool)).unwrap_err();
    assert_eq!(throttled.limit, LimitKind::Fingerprint);
    // Another fingerprint from the same addresses, and none at all
    // (cleartext), pass.
    assert!(l.admit(&from(13, browser)).is_ok());
    assert!(l.admit(&from(13, None)).is_ok());
}

#[test]
fn a_refusal_by_a_wider_limit_uses_up_no_narrower_one() {
    let clock = FakeRelativeClock::default();
    let l = Limiters::with_clock(
        &limits(
            r#"
            ip = { rate = "1/min", burst = 2 }
            global = { rate = "1/min", burst = 1 }
            "#,
        ),
        100,
        clock.clone(),
    );
    assert!(
        l.admit(&keys("192.0.2.9", 9)).is_ok(),
        "takes the global cell"
    );
    let a = keys("192.0.2.1", 1);
    for _ in 0..10 {
        assert_eq!(l.admit(&a).unwrap_err().limit, LimitKind::Global);
    }
    // Once the global limit admits again, the client still has its
    // whole burst: the refused attempts took nothing from it.
    clock.advance(Duration::from_secs(120));
    assert!(l.admit(&a).is_ok());
    clock.advance(Duration::from_secs(60));
    assert!(l.admit(&a).is_ok());
}

#[test]
fn a_reload_keeps_the_counts_of_limits_with_the_same_keys() {
    let clock = FakeRelativeClock::default();
    let loose = limits(
        r#"
        ip = { rate = "1/min", burst = 5 }
        subnet = { rate = "1/min", burst = 5 }
        "#,
    );
    let l = Limiters::with_clock(&loose, 100, clock);
    let a = keys("192.0.2.1", 1);
    for _ in 0..3 {
        assert!(l.admit(&a).is_ok());
    }
    // A tighter ip limit: the three attempts already made count.
    let tight = limits(
        r#"
        ip = { rate = "1/min", burst = 3 }
        subnet = { rate = "1/min", burst = 5, ipv4_prefix = 16 }
        "#,
    );
    let l = l.reconfigure(&tight, 100);
    assert_eq!(l.admit(&a).unwrap_err().limit, LimitKind::Ip);
    // The subnet limit's keys changed (/16): it starts empty.
    for i in 2..=6 {
        assert!(l.admit(&keys(&format!("192.0.2.{i}"), i)).is_ok());
    }
    assert_eq!(
        l.admit(&keys("192.0.2.7", 7)).unwrap_err().limit,
        LimitKind::Subnet
    );
}

#[test]
fn the_store_never_holds_more_than_its_cap() {
    let store = BoundedStore::<u64>::new(SHARDS * 10);
    for key in 0..10_000u64 {
        let _ = store.measure_and_replace(&key, |_| Ok::<_, ()>(((), Nanos::from(key))));
    }
    assert!(store.len() <= SHARDS * 10);
    // The most recent keys are still there.
    let recent = store.measure_and_replace(&9_999, |prev| Ok::<_, ()>((prev, Nanos::from(0u64))));
    assert_eq!(recent, Ok(Some(Nanos::from(9_999u64))));
}
