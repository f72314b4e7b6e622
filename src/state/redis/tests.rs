//! The parts of the Redis backend that need no Redis.

use super::reply::Tally;
use super::*;

#[test]
fn a_tally_rebuilds_the_buckets_and_the_64_bit_sketch_from_signed_halves() {
    // Bit 31 set in the low half and bit 63 in the high half: Lua's bit
    // library hands both back as negative 32-bit numbers.
    let reply = [
        10_000,
        4_000,
        3,
        2,
        1,
        i64::from(i32::MIN),
        i64::from(i32::MIN) | 1,
        5,
        5,
        0,
        1,
        0,
        2,
        9_000,
    ];
    let tally = Tally::parse(&reply).unwrap();
    assert_eq!((tally.now, tally.since), (10_000, 4_000));
    assert_eq!(tally.current.attempts, 3);
    assert_eq!(tally.current.failures, 2);
    assert_eq!(tally.current.leaked_usernames, 1);
    assert_eq!(tally.current.usernames, (1 << 31) | (1 << 63) | (1 << 32));
    assert_eq!(tally.previous.usernames, 1);
    assert_eq!((tally.bans, tally.banned_until), (2, 9_000));
    assert!(Tally::parse(&reply[..13]).is_none());
}

#[test]
fn keys_carry_the_prefix_and_one_hash_tag_per_thing_counted() {
    let keys = Keys::new("shop-a:", 64);
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(
        keys.suspicion(IpNet::from(ip)),
        "shop-a:{ip:192.0.2.7}:suspicion"
    );
    assert_eq!(keys.ban(IpNet::from(ip)), "shop-a:{ip:192.0.2.7}:ban");
    let net: IpNet = "2001:db8::1/48".parse().unwrap();
    assert_eq!(keys.ban(net), "shop-a:{net:2001:db8::/48}:ban");
    assert_eq!(keys.index_of(net), "shop-a:{bans}:net");
    assert_eq!(member(net), "2001:db8::/48");
    let one = IpNet::from(ip);
    assert_eq!(
        (keys.index_of(one), member(one)),
        ("shop-a:{bans}:ip".into(), "192.0.2.7".into())
    );
    // An IPv6 client is its /64: one slot for its suspicion and its ban.
    let v6: IpNet = "2001:db8:1:2::/64".parse().unwrap();
    assert_eq!(keys.ban(v6), "shop-a:{ip:2001:db8:1:2::/64}:ban");
    assert_eq!(
        keys.suspicion(v6),
        "shop-a:{ip:2001:db8:1:2::/64}:suspicion"
    );
    assert_eq!(keys.index_of(v6), "shop-a:{bans}:ip");
    let v4: IpNet = "192.0.2.0/24".parse().unwrap();
    assert_eq!(keys.escalation(v4), "shop-a:{net:192.0.2.0/24}:escalation");
    assert_eq!(keys.ban(v4), "shop-a:{net:192.0.2.0/24}:ban");
    assert_eq!(
        keys.user_limit(0xab),
        "shop-a:{user:00000000000000ab}:limit"
    );
}
