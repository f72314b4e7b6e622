use super::*;

/// Small numbers that are easy to follow: on above 10 failures/s (or 4 ×
/// baseline) with more than half of attempts failing; off after 5 s under
/// 5 failures/s.
fn rules() -> Rules {
    Rules {
        enabled: true,
        floor: 10.0,
        factor: 4.0,
        ratio: 0.5,
        window: 2.0,
        baseline_window: 600.0,
        release: 0.5,
        hold: Duration::from_secs(5),
    }
}

/// One second with `attempts` attempts, `failures` of them failed.
fn second(attempts: u64, failures: u64) -> Counts {
    Counts {
        attempts,
        failures,
        elapsed: Duration::from_secs(1),
    }
}

/// Runs `seconds` identical seconds; returns the mode after each.
fn run(detector: &mut Detector, rules: &Rules, seconds: usize, counts: Counts) -> Vec<bool> {
    (0..seconds)
        .map(|_| detector.evaluate(counts, rules))
        .collect()
}

#[test]
fn a_surge_of_failures_switches_on_within_seconds_and_off_after_the_hold() {
    let rules = rules();
    let mut d = Detector::default();
    assert!(!run(&mut d, &rules, 60, second(20, 2)).contains(&true));
    let surge = run(&mut d, &rules, 10, second(200, 190));
    let first_on = surge.iter().position(|&on| on).expect("the surge is seen");
    assert!(first_on <= 2, "on after {} s", first_on + 1);
    assert!(surge[first_on..].iter().all(|&on| on));

    // Back to normal: the average decays under 5/s within a few seconds,
    // then the hold of 5 s must pass in full.
    let after = run(&mut d, &rules, 20, second(20, 2));
    let first_off = after.iter().position(|&on| !on).expect("the end is seen");
    assert!(
        (5..=12).contains(&first_off),
        "off after {} s",
        first_off + 1
    );
    assert!(after[first_off..].iter().all(|&on| !on));
}

#[test]
fn the_table_of_single_situations() {
    // (steady attempts/s, failures/s, baseline, on after 30 s?)
    let cases = [
        (20, 2, 0.0, false),    // ordinary traffic
        (30, 9, 0.0, false),    // under the floor
        (100, 40, 0.0, false),  // over the floor, but most attempts succeed: a sale
        (40, 30, 0.0, true),    // over the floor, mostly failing
        (60, 30, 10.0, false),  // a busy route: under 4 × its baseline of 10/s
        (120, 100, 10.0, true), // ... and over it
    ];
    for (attempts, failures, baseline, expected) in cases {
        let mut d = Detector {
            baseline,
            ..Detector::default()
        };
        let on = run(&mut d, &rules(), 30, second(attempts, failures));
        assert_eq!(
            on.last().copied(),
            Some(expected),
            "{attempts}/s, {failures} failing, baseline {baseline}"
        );
    }
}

/// A campaign that starts right after a busy, mostly successful minute is
/// seen at its first tick, although the window still remembers the
/// successes; a lone failure in a quiet tick after a sale is not a
/// campaign.
#[test]
fn the_last_ticks_share_of_failures_counts_when_the_tick_is_over_the_threshold() {
    let rules = rules();
    let mut peak = Detector::default();
    assert!(!run(&mut peak, &rules, 60, second(100, 8)).contains(&true));
    assert!(peak.evaluate(second(60, 40), &rules), "the first tick");
    assert!(peak.failure_ratio() < rules.ratio, "the window lags");

    let mut sale = Detector::default();
    assert!(!run(&mut sale, &rules, 30, second(100, 40)).contains(&true));
    assert!(sale.failure_rate > rules.floor);
    assert!(
        !sale.evaluate(second(1, 1), &rules),
        "one failure, all of a quiet tick"
    );
    assert!(
        !sale.evaluate(second(16, 9), &rules),
        "a tick under the floor by itself"
    );
}

#[test]
fn a_rate_between_the_two_thresholds_keeps_it_on_hysteresis() {
    let rules = rules();
    let mut d = Detector::default();
    run(&mut d, &rules, 10, second(100, 90));
    assert!(d.on);
    // 7 failures/s: under the switch-on threshold (10), over release (5).
    let between = run(&mut d, &rules, 60, second(10, 7));
    assert!(between.iter().all(|&on| on));
    // A lull shorter than the hold, then failures again: the hold restarts.
    run(&mut d, &rules, 3, second(0, 0));
    assert!(d.on, "3 s quiet, under the hold of 5 s");
    assert_eq!(d.quiet, Duration::from_secs(3));
    run(&mut d, &rules, 2, second(100, 90));
    assert_eq!(d.quiet, Duration::ZERO);
    assert!(d.on);
}

#[test]
fn the_baseline_is_learned_while_off_and_frozen_while_on() {
    let rules = rules();
    let mut d = Detector::default();
    run(&mut d, &rules, 3600, second(10, 3));
    assert!((d.baseline - 3.0).abs() < 0.1, "{}", d.baseline);
    assert!(!d.on);
    let learned = d.baseline;
    run(&mut d, &rules, 600, second(100, 95));
    assert!(d.on);
    assert_eq!(d.baseline, learned, "an attack is not learned as normal");
}

#[test]
fn uneven_ticks_and_disabled_rules() {
    let rules = rules();
    let mut d = Detector::default();
    // A late tick of 3 s with 3 s worth of failures counts as 3 s.
    let late = Counts {
        attempts: 300,
        failures: 270,
        elapsed: Duration::from_secs(3),
    };
    assert!(d.evaluate(late, &rules));
    let zero = Counts {
        attempts: 5,
        failures: 5,
        elapsed: Duration::ZERO,
    };
    assert!(d.evaluate(zero, &rules), "no time passed: nothing changes");
    let off = Rules {
        enabled: false,
        ..rules
    };
    assert!(!d.evaluate(second(100, 100), &off));
}

fn two_routes() -> AttackMode {
    let config = crate::config::for_tests(
        "[[login]]\nname = \"shop\"\npath = \"/login\"\n\
         [[login]]\nname = \"api\"\npath = \"/api/login\"\n\
         [attack]\nmin_failure_rate = 2.0\nwindow = \"1s\"\nhold = \"2s\"",
    );
    let routes = Routes::new(&config.login).unwrap();
    AttackMode::new(&config.attack, &routes)
}

#[test]
fn the_handle_counts_ticks_forces_and_shares() {
    let attack = two_routes();
    let start = Instant::now();
    for _ in 0..50 {
        attack.record(0, Some(true));
        attack.record(1, Some(false));
    }
    attack.record(0, None);
    attack.record(7, Some(true));
    let detected = attack.tick(start + Duration::from_secs(1));
    assert_eq!(detected, [true, false]);
    assert!(attack.is_on(0) && !attack.is_on(1) && !attack.is_on(7));

    attack.force(Some("shop"), Mode::Off).unwrap();
    attack.force(Some("api"), Mode::On).unwrap();
    assert!(!attack.is_on(0) && attack.is_on(1));
    assert_eq!(
        attack.force(Some("nope"), Mode::On),
        Err(UnknownRoute {
            name: "nope".into()
        })
    );
    let status = attack.status();
    assert_eq!(status[0].source, "forced");
    assert!(status[0].failure_rate > 2.0);

    attack.force(None, Mode::Auto).unwrap();
    assert!(attack.is_on(0) && !attack.is_on(1));
    assert_eq!(attack.status()[0].source, "detected");

    // Another replica detects an attack on "api".
    let shared = SharedMode {
        detected: true,
        mode: Mode::Auto,
    };
    attack.share(&[SharedMode::default(), shared]);
    assert!(attack.is_on(1));
    assert_eq!(attack.status()[1].source, "shared");

    // Quiet seconds: the detector lets "shop" go after its hold.
    let mut detected = Vec::new();
    for s in 2..12 {
        detected = attack.tick(start + Duration::from_secs(s));
    }
    assert_eq!(detected, [false, false]);
    assert!(!attack.is_on(0));
}
