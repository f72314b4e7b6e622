//! `[state] backend = "redis-cluster"`: a real cluster of three primaries
//! and three replicas, shared by two credgate replicas in this process.
//! Limits hold at exactly their totals although each limit is its own
//! script, bans and network bans made through one replica refuse on the
//! other, a killed primary is replaced by its replica without restarting
//! anything, and two key prefixes never see each other's state.

use std::time::Duration;

use http::StatusCode;

use crate::shared_state::{replicas_with, Replicas, RIGHT, TOKEN, WRONG};
use crate::support::client::{self, admin};
use crate::support::redis::RedisServer;
use crate::support::redis_cluster::RedisCluster;
use crate::support::*;

/// The `[state]` table for a cluster with these seeds, under `prefix`.
fn state(seeds: &[String], prefix: &str) -> String {
    let urls: Vec<String> = seeds.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "backend = \"redis-cluster\"\nredis_urls = [{}]\nkey_prefix = \"{prefix}\"\n\
         redis_timeout = \"250ms\"",
        urls.join(", ")
    )
}

async fn on_cluster(cluster: &RedisCluster, prefix: &str, tables: &str) -> Replicas {
    replicas_with(&state(&cluster.urls(), prefix), tables).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_limits_are_shared_at_exactly_the_configured_total() {
    let cluster = RedisCluster::start();
    let r = on_cluster(
        &cluster,
        "shop:",
        "[limits]\nip = { rate = \"1/min\", burst = 6 }\n\
         username = { rate = \"1/min\", burst = 4 }",
    )
    .await;
    // Failed logins (the limits are charged by failures). The ip limit is
    // checked first, on its own slot: the username limit refuses the fifth
    // attempt as alice, and the address gets its cell back.
    let mut passed = 0;
    for i in 0..6 {
        let on = if i % 2 == 0 { &r.a } else { &r.b };
        let status = r
            .login_as(on, "192.0.2.10", "alice@example.com", WRONG)
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        passed += 1;
    }
    assert_eq!(passed, 4, "the username limit's total");
    let mut passed = 0;
    for i in 0..6 {
        let on = if i % 2 == 0 { &r.b } else { &r.a };
        let status = r
            .login_as(on, "192.0.2.10", &format!("u{i}@example.com"), WRONG)
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        passed += 1;
    }
    assert_eq!(passed, 2, "the ip limit's total, less the four taken");
    assert_ne!(
        r.login_as(&r.a, "192.0.2.11", "carol@example.com", RIGHT)
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        "another address has its own budget"
    );
    let bob = r
        .login_as(
            &r.b,
            "192.0.2.12",
            "bob@example.com",
            "correct horse battery staple",
        )
        .await;
    assert_eq!(bob, StatusCode::OK);
    let keys = cluster.keys();
    eprintln!("{} keys: {keys:#?}", keys.len());
    assert!(keys.iter().all(|k| k.starts_with("shop:")), "{keys:?}");
    assert!(keys.contains(&"shop:{ip:192.0.2.10}:limit".to_owned()));
    // Risk's memory, one slot per key: the failures, and bob's success.
    for key in ["shop:{ip:192.0.2.10}:risk", "shop:{net:192.0.2.0/24}:risk"] {
        assert!(keys.contains(&key.to_owned()), "{key}: {keys:?}");
    }
    assert!(keys.iter().any(|k| k.ends_with("}:seen")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_ban_and_a_network_ban_through_one_replica_apply_on_the_other_and_lift() {
    let cluster = RedisCluster::start();
    let r = on_cluster(&cluster, "shop:", "").await;
    let bans = r.a.admin_url("/admin/bans");
    let one = r#"{"target": "203.0.113.9", "duration": "1h"}"#;
    assert_eq!(
        client::admin_post(&bans, one, TOKEN).await,
        StatusCode::CREATED
    );
    assert_eq!(
        r.login(&r.b, "203.0.113.9", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    let (_, listing) = admin("GET", &r.b.admin_url("/admin/bans"), Some(TOKEN)).await;
    assert!(listing.contains("203.0.113.9/32"), "{listing}");
    let unban = r.b.admin_url("/admin/bans/203.0.113.9");
    assert_eq!(admin("DELETE", &unban, Some(TOKEN)).await.0, StatusCode::OK);
    assert_eq!(r.login(&r.a, "203.0.113.9", RIGHT).await, StatusCode::OK);

    // A network ban: its key is in the network's slot, the index in its
    // own; the other replica learns the new prefix length within a second.
    let net = r#"{"target": "2001:db8:bad::/48", "duration": "1h"}"#;
    assert_eq!(
        client::admin_post(&bans, net, TOKEN).await,
        StatusCode::CREATED
    );
    assert_eq!(
        r.login(&r.a, "2001:db8:bad::7", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        r.login(&r.b, "2001:db8:bad:1::8", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        r.login(&r.b, "2001:db8:bae::8", RIGHT).await,
        StatusCode::OK
    );
    let (_, listing) = admin("GET", &r.a.admin_url("/admin/bans"), Some(TOKEN)).await;
    assert!(listing.contains("2001:db8:bad::/48"), "{listing}");
    let unban = r.b.admin_url("/admin/bans/2001:db8:bad::/48");
    assert_eq!(admin("DELETE", &unban, Some(TOKEN)).await.0, StatusCode::OK);
    assert_eq!(
        r.login(&r.a, "2001:db8:bad::7", RIGHT).await,
        StatusCode::OK
    );
    let (_, listing) = admin("GET", &r.a.admin_url("/admin/bans"), Some(TOKEN)).await;
    assert!(!listing.contains("2001:db8:bad"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_key_prefixes_on_one_cluster_do_not_see_each_other() {
    let cluster = RedisCluster::start();
    let limits = "[limits]\nip = { rate = \"1/min\", burst = 3 }";
    let staging = on_cluster(&cluster, "staging:", limits).await;
    let production = on_cluster(&cluster, "production:", limits).await;
    assert_eq!(staging.passed_until_refused("192.0.2.20", 10).await, 3);
    assert_eq!(production.passed_until_refused("192.0.2.20", 10).await, 3);
    let bans = staging.a.admin_url("/admin/bans");
    let one = r#"{"target": "203.0.113.50", "duration": "1h"}"#;
    assert_eq!(
        client::admin_post(&bans, one, TOKEN).await,
        StatusCode::CREATED
    );
    assert_eq!(
        staging.login(&staging.b, "203.0.113.50", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        production.login(&production.b, "203.0.113.50", RIGHT).await,
        StatusCode::OK
    );
    let (_, listing) = admin("GET", &production.a.admin_url("/admin/bans"), Some(TOKEN)).await;
    assert!(!listing.contains("203.0.113.50"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_killed_primary_is_replaced_and_the_replicas_go_on() {
    let mut cluster = RedisCluster::start();
    let r = on_cluster(&cluster, "shop:", "").await;
    let bans = r.a.admin_url("/admin/bans");
    let one = r#"{"target": "203.0.113.77", "duration": "1h"}"#;
    assert_eq!(
        client::admin_post(&bans, one, TOKEN).await,
        StatusCode::CREATED
    );
    let victim = cluster.primary_of("shop:{ip:203.0.113.77}:ban");
    // Let the ban reach the replica, then kill its primary.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.nodes[victim].kill();
    // During the gap `on_backend_error = "local"` answers: logins flow,
    // and the ban made on replica a is in its memory.
    let mut served = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut replaced = false;
    while tokio::time::Instant::now() < deadline {
        for on in [&r.a, &r.b] {
            let status = r.login(on, "192.0.2.30", RIGHT).await;
            assert!(
                status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS,
                "{status}"
            );
            served += 1;
        }
        // Replica b never saw the ban locally: once it refuses, the
        // promoted replica answers for the slot.
        if r.login(&r.b, "203.0.113.77", RIGHT).await == StatusCode::FORBIDDEN {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replaced, "the promoted replica never answered with the ban");
    assert!(served > 0);
    cluster.wait_until_ready();
    // New state is written through the new primary, on both replicas.
    let other = r#"{"target": "203.0.113.78", "duration": "1h"}"#;
    assert_eq!(
        client::admin_post(&r.b.admin_url("/admin/bans"), other, TOKEN).await,
        StatusCode::CREATED
    );
    assert_eq!(
        r.login(&r.a, "203.0.113.78", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    // A replica started now, the dead node its first seed, connects
    // through the others.
    let mut seeds = cluster.urls();
    seeds.swap(0, victim);
    let late = replicas_with(&state(&seeds, "shop:"), "").await;
    assert_eq!(
        late.login(&late.a, "203.0.113.77", RIGHT).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_kind_of_redis_is_an_error_at_start() {
    let cluster = RedisCluster::start();
    let standalone = RedisServer::start();
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = trusting_server_with_admin(&cert);
    let base = config_toml(&cert, shop.addr(), &server, "");
    let single_on_cluster = format!(
        "{base}\n[state]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        cluster.nodes[0].url()
    );
    let cluster_on_single = format!(
        "{base}\n[state]\nbackend = \"redis-cluster\"\nredis_urls = [\"{}\"]\n",
        standalone.url()
    );
    for (toml, hint) in [
        (single_on_cluster, "redis-cluster"),
        (cluster_on_single, "standalone"),
    ] {
        let config = credgate::Config::from_toml(&toml).unwrap();
        let error = match credgate::Server::bind(&config).await {
            Ok(_) => panic!("started against the wrong kind of redis"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(hint), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_slot_moved_during_resharding_keeps_the_limit_at_its_total() {
    let cluster = RedisCluster::start();
    let r = on_cluster(
        &cluster,
        "shop:",
        "[limits]\nip = { rate = \"1/min\", burst = 6 }\nusername = \"off\"",
    )
    .await;
    // Failed logins: the limits are charged by failures.
    let from = "192.0.2.40";
    for on in [&r.a, &r.b] {
        assert_eq!(r.login(on, from, WRONG).await, StatusCode::UNAUTHORIZED);
    }
    // Half-way: the keys are on the target, the source answers ASK.
    let moving = cluster.begin_move(&format!("shop:{{ip:{from}}}:limit"));
    for on in [&r.a, &r.b] {
        assert_eq!(r.login(on, from, WRONG).await, StatusCode::UNAUTHORIZED);
    }
    // Done: the old owner answers MOVED, and the clients follow.
    cluster.finish_move(moving);
    // Exactly the total: a request answered by the local fallback would
    // have had a fresh budget of its own.
    assert_eq!(r.passed_until_refused(from, 10).await, 2);
}
