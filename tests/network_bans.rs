//! Bans per network (issue 10, item 10): an IPv6 client is its /64, and
//! bans of several addresses of one IPv4 /24 escalate to a ban of the /24,
//! unless its customers log in (a NAT). Clients are simulated through a
//! trusted proxy's `X-Forwarded-For`; the limits are off, so that every
//! refusal here is a ban.

use http::StatusCode;

use std::time::Duration;

use crate::shared_state::{replicas_with, Replicas};
use crate::support::client::admin;
use crate::support::redis::RedisServer;
use crate::support::redis_cluster::RedisCluster;
use crate::support::*;

const WRONG: &str = "not-the-password";
const RIGHT: &str = "wonderland-42";
const USER: &str = "alice@example.com";

/// Two failures ban a client for an hour.
const TABLES: &str = "[suspicion]\nmin_attempts = 2\nfailure_ratio = 0.5\nban = [\"1h\"]\n\
                      [limits]\nip = \"off\"\nsubnet = \"off\"\nusername = \"off\"\nglobal = \"off\"";

struct Proxy {
    _cert: TestCert,
    _shop: credgate::demo::Shop,
    proxy: RunningProxy,
    client: TestClient,
}

async fn protected(tables: &str) -> Proxy {
    let (cert, shop, proxy) = crate::protection::protected(tables).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    Proxy {
        _cert: cert,
        _shop: shop,
        proxy,
        client,
    }
}

impl Proxy {
    async fn login(&self, from: &str, password: &str) -> StatusCode {
        let request = form_login(self.proxy.url("/login"), from, USER, password);
        self.client.send(request).await.status
    }

    /// Fails logins from `from` until it is banned.
    async fn get_banned(&self, from: &str) {
        for _ in 0..5 {
            if self.login(from, WRONG).await == StatusCode::FORBIDDEN {
                return;
            }
        }
        panic!("{from} never banned");
    }

    async fn listing(&self) -> String {
        let url = self.proxy.admin_url("/admin/bans");
        admin("GET", &url, Some(ADMIN_TOKEN)).await.1
    }

    async fn bans(&self, reason: &str) -> f64 {
        let metrics = scrape(self.proxy.addrs.admin).await;
        sample(&metrics, "credgate_bans_total", &[("reason", reason)])
    }
}

#[tokio::test]
async fn an_attacker_rotating_inside_a_64_is_banned_once_and_stays_banned() {
    let p = protected(TABLES).await;
    // One failure from each of two addresses of one /64: one client, banned.
    assert_eq!(
        p.login("2001:db8:0:7::1", WRONG).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        p.login("2001:db8:0:7::2", WRONG).await,
        StatusCode::UNAUTHORIZED
    );
    for rotated in ["2001:db8:0:7::3", "2001:db8:0:7:beef:1:2:3"] {
        assert_eq!(
            p.login(rotated, RIGHT).await,
            StatusCode::FORBIDDEN,
            "{rotated}"
        );
    }
    assert_eq!(
        p.login("2001:db8:0:8::1", RIGHT).await,
        StatusCode::OK,
        "another /64 is another client"
    );
    assert_eq!(p.bans("failures").await, 1.0, "banned once");
    let listing = p.listing().await;
    assert!(listing.contains("\"2001:db8:0:7::/64\""), "{listing}");
}

#[tokio::test]
async fn three_addresses_of_a_24_banned_ban_the_24() {
    let p = protected(TABLES).await;
    for from in ["198.51.100.1", "198.51.100.2"] {
        p.get_banned(from).await;
    }
    assert_eq!(p.bans("subnet_escalation").await, 0.0);
    assert_eq!(
        p.login("198.51.100.4", WRONG).await,
        StatusCode::UNAUTHORIZED
    );
    p.get_banned("198.51.100.3").await;
    assert_eq!(p.login("198.51.100.4", RIGHT).await, StatusCode::FORBIDDEN);
    assert_eq!(
        p.login("198.51.100.250", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        p.login("198.51.101.4", RIGHT).await,
        StatusCode::OK,
        "the next /24 is not banned"
    );
    assert_eq!(p.bans("subnet_escalation").await, 1.0);
    assert_eq!(p.bans("failures").await, 3.0);
    let listing = p.listing().await;
    assert!(
        listing.contains(
            r#""target":"198.51.100.0/24","origin":"automatic","reason":"subnet_escalation""#
        ),
        "{listing}"
    );
}

#[tokio::test]
async fn a_24_where_customers_log_in_is_not_escalated() {
    let p = protected(TABLES).await;
    // An office or carrier NAT: ten customers log in from its addresses.
    for last in 100..110 {
        let from = format!("198.51.100.{last}");
        assert_eq!(p.login(&from, RIGHT).await, StatusCode::OK, "{from}");
    }
    // Attackers behind it are banned one address at a time.
    for from in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.5",
    ] {
        p.get_banned(from).await;
    }
    assert_eq!(p.login("198.51.100.4", RIGHT).await, StatusCode::OK);
    assert_eq!(p.login("198.51.100.100", RIGHT).await, StatusCode::OK);
    assert_eq!(p.bans("subnet_escalation").await, 0.0);
    assert_eq!(p.bans("failures").await, 4.0);
}

#[tokio::test]
async fn with_redis_escalation_and_64s_hold_across_replicas() {
    let redis = RedisServer::start();
    let state = format!(
        "backend = \"redis\"\nredis_url = \"{}\"\nredis_timeout = \"250ms\"",
        redis.url()
    );
    let r = replicas_with(&state, TABLES).await;
    across_replicas(&r, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_escalation_and_64s_hold_across_replicas() {
    let cluster = RedisCluster::start();
    let seeds: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let state = format!(
        "backend = \"redis-cluster\"\nredis_urls = [{}]\nredis_timeout = \"250ms\"",
        seeds.join(", ")
    );
    let r = replicas_with(&state, TABLES).await;
    // The replica that did not escalate learns the new network ban's
    // prefix length within a second.
    across_replicas(&r, Duration::from_millis(1100)).await;
}

/// Escalation, the NAT exception and IPv6 /64s, with each client's
/// attempts spread over both replicas; `settle`: how long a replica may
/// take to see a network ban the other made.
async fn across_replicas(r: &Replicas, settle: Duration) {
    // Each address fails once on each replica: the record is shared.
    for from in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(r.login(&r.a, from, WRONG).await, StatusCode::UNAUTHORIZED);
        assert_eq!(r.login(&r.b, from, WRONG).await, StatusCode::UNAUTHORIZED);
        assert_eq!(r.login(&r.a, from, RIGHT).await, StatusCode::FORBIDDEN);
    }
    tokio::time::sleep(settle).await;
    for on in [&r.a, &r.b] {
        assert_eq!(
            r.login(on, "198.51.100.4", RIGHT).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(r.login(on, "198.51.101.4", RIGHT).await, StatusCode::OK);
    }
    // An IPv6 client rotating inside its /64 across replicas.
    assert_eq!(
        r.login(&r.a, "2001:db8:0:7::1", WRONG).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        r.login(&r.b, "2001:db8:0:7::2", WRONG).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        r.login(&r.a, "2001:db8:0:7::3", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        r.login(&r.b, "2001:db8:0:7:1::9", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        r.login(&r.b, "2001:db8:0:8::1", RIGHT).await,
        StatusCode::OK
    );

    let url = r.b.admin_url("/admin/bans");
    let listing = admin("GET", &url, Some(ADMIN_TOKEN)).await.1;
    assert!(
        listing.contains(
            r#""target":"198.51.100.0/24","origin":"automatic","reason":"subnet_escalation""#
        ),
        "{listing}"
    );
    assert!(listing.contains("\"2001:db8:0:7::/64\""), "{listing}");
    let mut escalated = 0.0;
    for proxy in [&r.a, &r.b] {
        let metrics = scrape(proxy.addrs.admin).await;
        escalated += sample(
            &metrics,
            "credgate_bans_total",
            &[("reason", "subnet_escalation")],
        );
    }
    assert_eq!(escalated, 1.0, "one replica escalated, once");

    // A NAT whose customers log in, through either replica, is spared.
    for last in 100..110 {
        let on = if last % 2 == 0 { &r.a } else { &r.b };
        let from = format!("198.51.102.{last}");
        assert_eq!(r.login(on, &from, RIGHT).await, StatusCode::OK, "{from}");
    }
    for from in ["198.51.102.1", "198.51.102.2", "198.51.102.3"] {
        r.login(&r.a, from, WRONG).await;
        r.login(&r.b, from, WRONG).await;
        assert_eq!(r.login(&r.a, from, RIGHT).await, StatusCode::FORBIDDEN);
    }
    assert_eq!(r.login(&r.b, "198.51.102.4", RIGHT).await, StatusCode::OK);

    // Lifting the /24 through one replica lifts it on both.
    let lift = r.a.admin_url("/admin/bans/198.51.100.0/24");
    assert_eq!(
        admin("DELETE", &lift, Some(ADMIN_TOKEN)).await.0,
        StatusCode::OK
    );
    assert_eq!(r.login(&r.b, "198.51.100.4", RIGHT).await, StatusCode::OK);
}
