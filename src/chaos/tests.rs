//! The engine against the fake platform: no servers, every call recorded.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::{
    events::Event,
    platform::{
        TargetKind,
        fake::{Call, FakePlatform},
    },
    scenario::{FaultKind, Schedule},
};

fn fault(name: &str, kind: FaultKind, at_ms: u64, duration_ms: Option<u64>) -> Fault {
    Fault {
        name: name.into(),
        kind,
        schedule: Schedule::At(Duration::from_millis(at_ms)),
        duration: duration_ms.map(Duration::from_millis),
    }
}

fn kill_cart(count: u32) -> FaultKind {
    FaultKind::KillPod {
        service: "cart".into(),
        radius: BlastRadius::Count(count),
        graceful: false,
    }
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        let id = match &e.kind {
            EventKind::FaultInjected { id, .. }
            | EventKind::FaultEnded { id, .. }
            | EventKind::FaultUndoFailed { id, .. } => id.clone(),
            EventKind::FaultFailed { id, .. } => id.clone().unwrap_or_default(),
            _ => String::new(),
        };
        out.push(format!("{} {id}", e.kind.name()).trim().to_string());
    }
    out
}

#[test]
fn a_schedule_lists_every_injection_in_time_order() {
    let every = Fault {
        schedule: Schedule::Every {
            every: Duration::from_secs(20),
            from: Duration::from_secs(10),
            until: Some(Duration::from_secs(45)),
        },
        ..fault("often", FaultKind::RestartCache { reboot: false }, 0, None)
    };
    let late = fault(
        "late",
        FaultKind::RestartCache { reboot: false },
        50_000,
        None,
    );
    let plan = schedule(&[late, every], Duration::from_secs(60));
    let got: Vec<(u64, &str)> = plan
        .iter()
        .map(|p| (p.at.as_secs(), p.fault.name.as_str()))
        .collect();
    assert_eq!(got, [(10, "often"), (30, "often"), (50, "late")]);
}

#[test]
fn a_blast_radius_picks_at_most_its_share_in_the_platform_s_order() {
    let c = |n: usize| {
        (1..=n)
            .map(|i| Target::new(TargetKind::Replica, format!("cart-{i}")))
            .collect::<Vec<_>>()
    };
    let ids = |t: Vec<Target>| t.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(pick(c(3), Some(&BlastRadius::Count(1)))), ["cart-1"]);
    let half = BlastRadius::Percent {
        percent: 50.0,
        max: Some(2),
    };
    assert_eq!(ids(pick(c(10), Some(&half))), ["cart-1", "cart-2"]);
    assert!(pick(Vec::new(), Some(&BlastRadius::Count(2))).is_empty());
    // No radius (a failover): every candidate.
    assert_eq!(pick(c(2), None).len(), 2);
}

#[test]
fn rollback_undoes_each_registered_fault_once() {
    let r = Rollback::default();
    let cache = Undo::Start(Target::new(TargetKind::Cache, "redis"));
    let broker = Undo::Start(Target::new(TargetKind::Broker, "rabbitmq"));
    r.register("f1", cache.clone());
    r.register("f2", broker);
    assert_eq!(r.take("f1"), [cache]);
    assert!(r.take("f1").is_empty(), "taken once");
    assert!(!r.is_empty());
    assert_eq!(r.take("f2").len(), 1);
    assert!(r.is_empty());
}

#[tokio::test]
async fn the_schedule_applies_faults_in_order_and_undoes_a_lasting_one_after_its_duration() {
    let platform = FakePlatform::new().with_replicas("cart", 3);
    let events = EventLog::new(None).unwrap();
    let mut rx = events.subscribe();
    let rollback = Rollback::default();
    let plan = schedule(
        &[
            fault("kill two", kill_cart(2), 0, None),
            fault(
                "cache down",
                FaultKind::RestartCache { reboot: false },
                10,
                Some(60),
            ),
        ],
        Duration::from_secs(1),
    );
    run_schedule(
        &platform,
        &events,
        &rollback,
        plan,
        Instant::now(),
        CancellationToken::new(),
    )
    .await;
    let cache = Target::new(TargetKind::Cache, "cache");
    assert_eq!(
        platform.calls(),
        [
            Call::Candidates("kill-pod".into()),
            Call::Inject {
                kind: "kill-pod".into(),
                targets: vec!["cart-1".into(), "cart-2".into()]
            },
            Call::Candidates("restart-cache".into()),
            Call::Inject {
                kind: "restart-cache".into(),
                targets: vec!["cache".into()]
            },
            Call::Undo(Undo::Start(cache)),
        ]
    );
    assert!(rollback.is_empty(), "the schedule ran its own undo");
    let seen = drain(&mut rx);
    let first = seen[0].split(' ').nth(1).unwrap().to_string();
    let second = seen[2].split(' ').nth(1).unwrap().to_string();
    assert_eq!(
        seen,
        [
            format!("fault.injected {first}"),
            format!("fault.ended {first}"),
            format!("fault.injected {second}"),
            format!("fault.ended {second}"),
        ]
    );
}

#[tokio::test]
async fn a_stopped_schedule_leaves_the_active_fault_for_rollback_which_undoes_it_newest_first() {
    let platform = Arc::new(FakePlatform::new());
    let events = EventLog::new(None).unwrap();
    let rollback = Rollback::default();
    let plan = schedule(
        &[
            fault(
                "cache down",
                FaultKind::RestartCache { reboot: false },
                0,
                Some(60_000),
            ),
            fault("broker down", FaultKind::RestartBroker, 5, Some(60_000)),
            fault("never", kill_cart(1), 30_000, None),
        ],
        Duration::from_secs(60),
    );
    let stop = CancellationToken::new();
    let stopper = {
        let stop = stop.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        }
    };
    tokio::join!(
        run_schedule(&*platform, &events, &rollback, plan, Instant::now(), stop),
        stopper
    );
    assert!(!rollback.is_empty(), "both outages still active");
    rollback.run_all(&*platform, &events).await;
    assert!(rollback.is_empty());
    let undos: Vec<Call> = platform
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Undo(_)))
        .collect();
    assert_eq!(
        undos,
        [
            Call::Undo(Undo::Start(Target::new(TargetKind::Broker, "broker"))),
            Call::Undo(Undo::Start(Target::new(TargetKind::Cache, "cache"))),
        ]
    );
    assert!(
        !platform
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Inject { kind, .. } if kind == "kill-pod")),
        "nothing is injected after the stop"
    );
}

#[tokio::test]
async fn an_undo_that_fails_is_retried_and_each_failure_is_an_event() {
    let platform = FakePlatform::new().failing_undos(1);
    let events = EventLog::new(None).unwrap();
    let mut rx = events.subscribe();
    let rollback = Rollback::default();
    let injected = apply(
        &platform,
        &events,
        &rollback,
        &fault(
            "cache down",
            FaultKind::RestartCache { reboot: false },
            0,
            Some(10_000),
        ),
    )
    .await
    .unwrap();
    assert_eq!(injected.undo_after_s, Some(10.0));
    assert!(rollback.is_pending(&injected.id));
    rollback.run_all(&platform, &events).await;
    let id = injected.id;
    assert_eq!(
        drain(&mut rx),
        [
            format!("fault.injected {id}"),
            format!("fault.undo_failed {id}"),
            format!("fault.ended {id}"),
        ]
    );
    let undos = platform
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Undo(_)))
        .count();
    assert_eq!(undos, 2);
}

#[tokio::test]
async fn an_undo_that_keeps_failing_gives_up_after_its_attempts_and_says_so() {
    let platform = FakePlatform::new().failing_undos(10);
    let events = EventLog::new(None).unwrap();
    let mut rx = events.subscribe();
    let rollback = Rollback::default();
    let f = fault("broker down", FaultKind::RestartBroker, 0, Some(1_000));
    let injected = apply(&platform, &events, &rollback, &f).await.unwrap();
    rollback.undo(&platform, &events, &injected.id).await;
    let seen = drain(&mut rx);
    assert_eq!(
        seen.iter()
            .filter(|s| s.starts_with("fault.undo_failed"))
            .count(),
        UNDO_ATTEMPTS as usize
    );
    assert!(
        !seen.iter().any(|s| s.starts_with("fault.ended")),
        "{seen:?}"
    );
    assert!(rollback.is_empty(), "given up, not left to run again");
}

#[tokio::test]
async fn a_lasting_fault_whose_action_fails_is_undone_at_once() {
    let platform = FakePlatform::new().failing_inject("restart-cache");
    let events = EventLog::new(None).unwrap();
    let mut rx = events.subscribe();
    let rollback = Rollback::default();
    let f = fault(
        "cache down",
        FaultKind::RestartCache { reboot: false },
        0,
        Some(60_000),
    );
    let err = apply(&platform, &events, &rollback, &f).await.unwrap_err();
    assert!(err.to_string().contains("told to fail"), "{err}");
    assert!(rollback.is_empty());
    let calls = platform.calls();
    assert!(
        matches!(calls.last(), Some(Call::Undo(Undo::Start(_)))),
        "{calls:?}"
    );
    let seen = drain(&mut rx);
    assert!(seen[0].starts_with("fault.injected"));
    assert!(seen[1].starts_with("fault.failed f"), "{seen:?}");
    assert!(seen[2].starts_with("fault.ended"), "{seen:?}");
}

#[tokio::test]
async fn a_fault_the_platform_cannot_perform_or_with_nothing_to_hit_is_refused_before_acting() {
    let platform = FakePlatform::new()
        .unsupported("restart-broker", "no broker here")
        .with_candidates("kill-pod", Vec::new());
    let events = EventLog::new(None).unwrap();
    let mut rx = events.subscribe();
    let rollback = Rollback::default();
    let e = apply(
        &platform,
        &events,
        &rollback,
        &fault("broker", FaultKind::RestartBroker, 0, None),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no broker here"), "{e}");
    let e = apply(
        &platform,
        &events,
        &rollback,
        &fault("kill", kill_cart(1), 0, None),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("nothing to hit"), "{e}");
    assert!(
        !platform
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Inject { .. })),
        "nothing acted"
    );
    assert_eq!(drain(&mut rx), ["fault.failed", "fault.failed"]);
}

#[tokio::test]
async fn the_engine_answers_each_request_with_what_it_hit() {
    let platform = FakePlatform::new().with_replicas("cart", 2);
    let events = EventLog::new(None).unwrap();
    let rollback = Rollback::default();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (reply, answer) = tokio::sync::oneshot::channel();
    tx.send((fault("kill", kill_cart(1), 0, None), Some(reply)))
        .await
        .unwrap();
    drop(tx);
    serve(&platform, &events, &rollback, rx, CancellationToken::new()).await;
    let injected = answer.await.unwrap().unwrap();
    assert_eq!(injected.targets[0].id, "cart-1");
    assert_eq!(injected.undo_after_s, None);
}

#[tokio::test(start_paused = true)]
async fn a_fault_that_waits_delays_neither_the_next_fault_nor_an_undo_that_is_due() {
    let platform = FakePlatform::new()
        .with_replicas("cart", 2)
        .slow_inject("kill-pod", Duration::from_secs(120));
    let events = EventLog::new(None).unwrap();
    let rollback = Rollback::default();
    let plan = schedule(
        &[
            fault(
                "cache down",
                FaultKind::RestartCache { reboot: false },
                0,
                Some(5_000),
            ),
            fault("kill a pod, slowly", kill_cart(1), 1_000, None),
            fault("broker down", FaultKind::RestartBroker, 2_000, Some(1_000)),
        ],
        Duration::from_secs(10),
    );
    let started = tokio::time::Instant::now();
    let stop = CancellationToken::new();
    let watch = async {
        // Everything but the slow kill is done well before it ends.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let calls = platform.calls();
        stop.cancel();
        calls
    };
    let (calls, ()) = tokio::join!(
        watch,
        run_schedule(
            &platform,
            &events,
            &rollback,
            plan,
            Instant::now(),
            stop.clone()
        )
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let undos: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c, Call::Undo(_)))
        .collect();
    assert_eq!(
        undos.len(),
        2,
        "both lasting faults were undone on time: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::Inject { kind, .. } if kind == "restart-broker")),
        "the broker fault after the slow one was applied: {calls:?}"
    );
}
