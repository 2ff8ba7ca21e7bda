//! The trackers that turn polls into the run's events, on their own: what
//! each transition of the group, the database, the servers and the alarms
//! becomes, and how polling backs off.

use std::{collections::BTreeMap, time::Duration};

use crate::{
    events::{EventKind, ServerRole},
    platform::aws::{
        Error,
        alarms::AlarmState,
        group::{GroupMember, GroupState, InstanceView},
        rds::{DbClusterInfo, DbClusterMember, DbInstanceInfo, FailoverEvent, FailoverPhase},
        watch::{AlarmTracker, Backoff, DatabaseTracker, GroupTracker, MAX_BACKOFF, ServerTracker},
    },
};

fn group(desired: i32, members: &[(&str, &str)]) -> GroupState {
    GroupState {
        name: "shop-asg".into(),
        arn: None,
        min_size: 3,
        max_size: 6,
        desired_capacity: desired,
        members: members
            .iter()
            .map(|(id, state)| GroupMember {
                instance_id: id.to_string(),
                availability_zone: "us-east-1a".into(),
                lifecycle_state: state.to_string(),
                health_status: "Healthy".into(),
                instance_type: Some("t3.small".into()),
            })
            .collect(),
        target_group_arns: vec!["arn:tg".into()],
    }
}

fn healthy(ids: &[&str]) -> BTreeMap<String, String> {
    ids.iter()
        .map(|i| (i.to_string(), "healthy".into()))
        .collect()
}

fn no_ec2() -> BTreeMap<String, InstanceView> {
    BTreeMap::new()
}

fn running(id: &str) -> EventKind {
    EventKind::InstanceRunning {
        instance: id.into(),
        address: None,
        zone: Some("us-east-1a".into()),
    }
}

fn serving(id: &str) -> EventKind {
    EventKind::InstanceServing {
        instance: id.into(),
        group: Some("shop-asg".into()),
    }
}

fn launching(id: &str, replaces: Option<&str>, scale_out: bool) -> EventKind {
    EventKind::InstanceLaunching {
        instance: id.into(),
        replaces: replaces.map(String::from),
        address: None,
        zone: Some("us-east-1a".into()),
        boot_delay_ms: None,
        group: Some("shop-asg".into()),
        scale_out,
    }
}

fn terminated(id: &str) -> EventKind {
    EventKind::InstanceTerminated {
        instance: id.into(),
        address: None,
        zone: Some("us-east-1a".into()),
    }
}

const THREE: [(&str, &str); 3] = [
    ("i-1", "InService"),
    ("i-2", "InService"),
    ("i-3", "InService"),
];

#[test]
fn the_first_poll_reports_every_member_running_and_serving_so_the_chart_starts_right() {
    let mut t = GroupTracker::new("shop-asg");
    let first = t.observe(
        &group(3, &THREE),
        &no_ec2(),
        Some(&healthy(&["i-1", "i-2", "i-3"])),
    );
    assert_eq!(
        first,
        [
            running("i-1"),
            running("i-2"),
            running("i-3"),
            serving("i-1"),
            serving("i-2"),
            serving("i-3")
        ]
    );
    // Nothing changed: nothing to say.
    let again = t.observe(
        &group(3, &THREE),
        &no_ec2(),
        Some(&healthy(&["i-1", "i-2", "i-3"])),
    );
    assert_eq!(again, []);
}

#[test]
fn a_terminated_member_is_reported_and_its_replacement_names_it() {
    let mut t = GroupTracker::new("shop-asg");
    t.observe(
        &group(3, &THREE),
        &no_ec2(),
        Some(&healthy(&["i-1", "i-2", "i-3"])),
    );
    let after = [
        ("i-2", "InService"),
        ("i-3", "InService"),
        ("i-4", "Pending"),
    ];
    let seen = t.observe(
        &group(3, &after),
        &no_ec2(),
        Some(&healthy(&["i-2", "i-3"])),
    );
    assert_eq!(
        seen,
        [terminated("i-1"), launching("i-4", Some("i-1"), false)]
    );
    let after = [
        ("i-2", "InService"),
        ("i-3", "InService"),
        ("i-4", "InService"),
    ];
    let seen = t.observe(
        &group(3, &after),
        &no_ec2(),
        Some(&healthy(&["i-2", "i-3", "i-4"])),
    );
    assert_eq!(seen, [running("i-4"), serving("i-4")]);
}

#[test]
fn an_instance_shutting_down_in_ec2_is_terminated_before_the_group_notices() {
    let mut t = GroupTracker::new("shop-asg");
    t.observe(&group(3, &THREE), &no_ec2(), None);
    let ec2: BTreeMap<String, InstanceView> = [(
        "i-2".to_string(),
        InstanceView {
            state: "shutting-down".into(),
            private_ip: Some("10.42.3.7".into()),
        },
    )]
    .into();
    let seen = t.observe(&group(3, &THREE), &ec2, None);
    assert_eq!(
        seen,
        [EventKind::InstanceTerminated {
            instance: "i-2".into(),
            address: Some("10.42.3.7".into()),
            zone: Some("us-east-1a".into()),
        }]
    );
    // The group's own Terminating state later says nothing new.
    let leaving = [
        ("i-1", "InService"),
        ("i-2", "Terminating"),
        ("i-3", "InService"),
    ];
    assert_eq!(t.observe(&group(3, &leaving), &ec2, None), []);
}

#[test]
fn a_desired_capacity_increase_is_a_decision_and_makes_the_next_launches_scale_outs() {
    let mut t = GroupTracker::new("shop-asg");
    t.observe(&group(3, &THREE), &no_ec2(), None);
    let five = [
        ("i-1", "InService"),
        ("i-2", "InService"),
        ("i-3", "InService"),
        ("i-4", "Pending"),
        ("i-5", "Pending"),
    ];
    let seen = t.observe(&group(5, &five), &no_ec2(), None);
    assert_eq!(
        seen,
        [
            EventKind::ScalingDecision {
                service: "shop-asg".into(),
                from: 3,
                to: 5,
                observed_cpu_percent: None,
                target_cpu_percent: None,
            },
            launching("i-4", None, true),
            launching("i-5", None, true),
        ]
    );
}

#[test]
fn members_removed_by_a_scale_in_are_not_waiting_for_replacements() {
    let mut t = GroupTracker::new("shop-asg");
    t.observe(&group(3, &THREE), &no_ec2(), None);
    let two = [("i-1", "InService"), ("i-2", "InService")];
    let seen = t.observe(&group(2, &two), &no_ec2(), None);
    assert!(seen.contains(&terminated("i-3")), "{seen:?}");
    let new = [
        ("i-1", "InService"),
        ("i-2", "InService"),
        ("i-9", "Pending"),
    ];
    let seen = t.observe(&group(2, &new), &no_ec2(), None);
    assert_eq!(seen, [launching("i-9", None, false)]);
}

#[test]
fn a_member_failing_its_health_checks_is_unhealthy_until_it_is_healthy_again() {
    let mut t = GroupTracker::new("shop-asg");
    t.observe(
        &group(3, &THREE),
        &no_ec2(),
        Some(&healthy(&["i-1", "i-2", "i-3"])),
    );
    let mut health = healthy(&["i-1", "i-2"]);
    health.insert("i-3".into(), "unhealthy".into());
    assert_eq!(
        t.observe(&group(3, &THREE), &no_ec2(), Some(&health)),
        [EventKind::InstanceUnhealthy {
            instance: "i-3".into(),
            reason: Some("target health unhealthy".into()),
        }]
    );
    assert_eq!(
        t.observe(
            &group(3, &THREE),
            &no_ec2(),
            Some(&healthy(&["i-1", "i-2", "i-3"]))
        ),
        [serving("i-3")]
    );
}

#[test]
fn polling_waits_twice_as_long_after_each_failure_up_to_a_limit_and_a_second_after_a_success() {
    let throttled = Error::Throttled {
        operation: "DescribeAutoScalingGroups",
        code: "Throttling".into(),
        message: "Rate exceeded".into(),
    };
    let mut b = Backoff::new(Duration::from_secs(1));
    let waits: Vec<u64> = (0..7).map(|_| b.after(Err(&throttled)).as_secs()).collect();
    assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(MAX_BACKOFF, Duration::from_secs(30));
    assert_eq!(b.after(Ok(())), Duration::from_secs(1));
}

fn instance(az: &str, status: &str) -> DbInstanceInfo {
    DbInstanceInfo {
        id: "shop-db".into(),
        arn: None,
        engine: "mariadb".into(),
        engine_version: "10.11".into(),
        status: status.into(),
        multi_az: true,
        availability_zone: Some(az.into()),
        secondary_availability_zone: None,
        cluster_id: None,
        replica_of: None,
        read_replicas: Vec::new(),
        endpoint: Some("shop-db.example:3306".into()),
        instance_class: Some("db.t3.medium".into()),
        maintenance_window: None,
    }
}

/// The messages are RDS's documented ones (Amazon RDS User Guide, "Amazon
/// RDS event categories and event messages", DB instance events,
/// category failover: the Message column, then the older wording its Notes
/// column and EventBridge's example still use); DescribeEvents gives no
/// event id.
#[test]
fn rds_failover_events_say_when_a_failover_started_and_completed_and_how_long_it_took() {
    for (message, phase, id) in [
        (
            "Multi-AZ instance failover started.",
            Some(FailoverPhase::Started),
            "RDS-EVENT-0013",
        ),
        (
            "Multi-AZ failover to standby complete - DNS propagation may take a few minutes.",
            Some(FailoverPhase::Completed),
            "RDS-EVENT-0015",
        ),
        (
            "Multi-AZ instance failover completed.",
            Some(FailoverPhase::Completed),
            "RDS-EVENT-0049",
        ),
        (
            "Multi-AZ instance activation started.",
            None,
            "RDS-EVENT-0050",
        ),
    ] {
        assert_eq!(FailoverPhase::of_message(message), phase, "{id}: {message}");
    }
    let started =
        "A Multi-AZ failover that resulted in the promotion of a standby instance has started.";
    let complete = "A Multi-AZ failover that resulted in the promotion of a standby instance is \
                    complete. It may take several minutes for the DNS to transfer to the new \
                    primary DB instance.";
    let completed = "A Multi-AZ failover has completed.";
    assert_eq!(
        FailoverPhase::of_message(started),
        Some(FailoverPhase::Started),
        "RDS-EVENT-0013"
    );
    assert_eq!(
        FailoverPhase::of_message(complete),
        Some(FailoverPhase::Completed),
        "RDS-EVENT-0015"
    );
    assert_eq!(
        FailoverPhase::of_message(completed),
        Some(FailoverPhase::Completed),
        "RDS-EVENT-0049"
    );
    assert_eq!(
        FailoverPhase::of_message("The instance has recovered from a partial failover."),
        None
    );
    assert_eq!(FailoverPhase::of_message("DB instance restarted"), None);

    let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let event = |phase, secs, message: &str| FailoverEvent {
        phase,
        at: t0 + Duration::from_secs(secs),
        message: message.into(),
    };
    let mut t = DatabaseTracker::default();
    let first = vec![event(FailoverPhase::Started, 0, started)];
    assert_eq!(
        t.failover_events("shop-db", &first),
        [EventKind::DbPrimaryKilled {
            server: "shop-db".into()
        }]
    );
    let later = vec![
        event(FailoverPhase::Started, 0, started),
        event(FailoverPhase::Completed, 37, complete),
    ];
    assert_eq!(
        t.failover_events("shop-db", &later),
        [EventKind::DbStandbyPromoted {
            server: "shop-db".into(),
            after_ms: Some(37_000),
        }],
        "each event once; the time by RDS's clock"
    );
    assert!(t.failover_events("shop-db", &later).is_empty());
}

#[test]
fn a_multi_az_failover_is_seen_as_rebooting_then_the_primary_in_another_zone() {
    let mut t = DatabaseTracker::default();
    let status = |s: &str| EventKind::DbStatus {
        database: "shop-db".into(),
        status: s.into(),
    };
    assert_eq!(
        t.instance(&instance("us-east-1a", "available")),
        [status("available")]
    );
    assert_eq!(
        t.instance(&instance("us-east-1a", "rebooting")),
        [status("rebooting")]
    );
    assert_eq!(
        t.instance(&instance("us-east-1b", "available")),
        [
            status("available"),
            EventKind::DbWriterMoved {
                to: "shop-db in us-east-1b".into(),
                address: Some("shop-db.example:3306".into()),
                after_ms: None,
            }
        ]
    );
}

#[test]
fn an_aurora_writer_change_is_a_writer_move() {
    let cluster = |writer: &str| DbClusterInfo {
        id: "shop-aurora".into(),
        arn: None,
        endpoint: Some("shop-aurora.cluster".into()),
        engine: "aurora-mysql".into(),
        status: "available".into(),
        members: ["shop-aurora-1", "shop-aurora-2"]
            .iter()
            .map(|m| DbClusterMember {
                instance_id: m.to_string(),
                is_writer: *m == writer,
            })
            .collect(),
    };
    let mut t = DatabaseTracker::default();
    assert_eq!(t.cluster(&cluster("shop-aurora-1")).len(), 1, "its status");
    assert_eq!(
        t.cluster(&cluster("shop-aurora-2")),
        [EventKind::DbWriterMoved {
            to: "shop-aurora-2".into(),
            address: Some("shop-aurora.cluster".into()),
            after_ms: None,
        }]
    );
}

#[test]
fn a_rebooting_broker_is_stopped_then_started() {
    let mut t = ServerTracker::new(ServerRole::Broker);
    assert_eq!(t.observe("RUNNING"), []);
    assert_eq!(
        t.observe("REBOOT_IN_PROGRESS"),
        [EventKind::ServerStopped {
            server: ServerRole::Broker,
            address: None
        }]
    );
    assert_eq!(t.observe("REBOOT_IN_PROGRESS"), []);
    assert_eq!(
        t.observe("RUNNING"),
        [EventKind::ServerStarted {
            server: ServerRole::Broker,
            address: None
        }]
    );
}

#[test]
fn health_alarm_states_are_reported_and_a_scaling_alarm_is_only_the_group_s_signal() {
    let alarm = |name: &str, state: &str| AlarmState {
        name: name.into(),
        state: state.into(),
        reason: None,
        updated_at: None,
    };
    let mut t = AlarmTracker::new(
        Some("shop-asg".into()),
        ["high".to_string(), "low".to_string()].into(),
        ["high".to_string()].into(),
    );
    let first = t.observe(&[
        alarm("high", "OK"),
        alarm("low", "ALARM"),
        alarm("unhealthy-hosts", "ALARM"),
    ]);
    assert_eq!(
        first,
        [EventKind::AlarmState {
            alarm: "unhealthy-hosts".into(),
            state: "ALARM".into(),
            reason: None,
        }],
        "only the health alarm's first state; an idle group's AlarmLow is no alarm"
    );
    let fired = t.observe(&[
        alarm("high", "ALARM"),
        alarm("low", "OK"),
        alarm("unhealthy-hosts", "OK"),
    ]);
    assert_eq!(
        fired,
        [
            EventKind::ScalingSignal {
                service: "shop-asg".into(),
                observed_cpu_percent: None,
                target_cpu_percent: None,
                replicas: None,
            },
            EventKind::AlarmState {
                alarm: "unhealthy-hosts".into(),
                state: "OK".into(),
                reason: None,
            },
        ],
        "AlarmHigh firing on load is the scaling signal, not an alarm"
    );
}
