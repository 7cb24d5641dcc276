//! Several instances on one PostgreSQL: intake anywhere, exactly one page,
//! failover within the lease TTL, and a paused old leader that wakes up
//! delivers nothing. Needs `PAGERD_TEST_POSTGRES_URL`.

use std::time::{Duration, Instant};

use pagerd::fakes::Fault;
use pagerd::fakes::stand_ins::{Extra, Options, StandIns};

use crate::util::{Backend, Proc, eventually, free_port, store_lines};

/// The TTL the tests run with (renewed every 200 ms).
const TTL: Duration = Duration::from_secs(1);

struct Cluster {
    vendors: StandIns,
    nodes: Vec<Proc>,
    _dir: tempfile::TempDir,
}

async fn cluster(n: usize, policy: &str) -> Option<Cluster> {
    let store = store_lines(Backend::Postgres).await?;
    let dir = tempfile::tempdir().unwrap();
    let vendors = StandIns::start(Options::default()).await.unwrap();
    let extra = Extra {
        policy: policy.into(),
        store,
        pagerduty: "poll_interval = \"off\"\nevents_per_minute = 0".into(),
        zendesk: "poll_interval = \"off\"".into(),
        ..Extra::default()
    };
    let mut nodes = Vec::new();
    for i in 0..n {
        let node_dir = dir.path().join(format!("node{i}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        let addr = free_port();
        let config = vendors
            .write_config(
                &node_dir,
                &addr.to_string(),
                &node_dir.join("unused.db"),
                &extra,
            )
            .unwrap();
        let mut p = Proc::new(config, node_dir.join("pagerd.log"), addr);
        p.start().await;
        nodes.push(p);
    }
    Some(Cluster {
        vendors,
        nodes,
        _dir: dir,
    })
}

impl Cluster {
    fn seed(&self, id: u64) {
        self.vendors
            .zendesk
            .upsert_ticket(crate::util::urgent(id, &format!("Instance {id} down")));
    }

    /// Posts ticket `id`'s webhook to node `i` until it answers 200.
    async fn send(&self, i: usize, id: u64) {
        let url = format!("http://{}/webhooks/zendesk", self.nodes[i].addr);
        while self.vendors.zendesk.send_webhook(&url, id).await != Ok(200) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn leader(&self) -> Option<usize> {
        for (i, n) in self.nodes.iter().enumerate() {
            if n.ready().await["role"] == "leader" {
                return Some(i);
            }
        }
        None
    }

    fn triggers(&self, id: u64) -> usize {
        let key = format!("zendesk-{id}");
        self.vendors
            .pagerduty
            .events()
            .iter()
            .filter(|e| e.action == "trigger" && e.dedup_key == key)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_take_tickets_and_page_each_exactly_once() {
    let Some(c) = cluster(2, "ack_timeout = \"1h\"").await else {
        return;
    };
    let tickets = 200;
    for id in 1..=tickets {
        c.seed(id);
    }
    // Round robin, and every fifth ticket to both at once.
    let sends = (1..=tickets).map(|id| {
        let c = &c;
        async move {
            if id % 5 == 0 {
                tokio::join!(c.send(0, id), c.send(1, id));
            } else {
                c.send((id % 2) as usize, id).await;
            }
        }
    });
    futures_util::future::join_all(sends).await;
    eventually("every ticket paged", || async {
        (1..=tickets).all(|id| c.vendors.pagerduty.opened_for(&format!("zendesk-{id}")) == 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in 1..=tickets {
        assert_eq!(c.triggers(id), 1, "ticket {id} paged once");
    }
    // On a loaded machine the 1 s lease may lapse between renewals; some
    // instance leads again at once.
    eventually("a leader", || async { c.leader().await.is_some() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_fails_over_within_the_ttl_and_fires_every_deadline_once() {
    let Some(mut c) = cluster(2, "ack_timeout = \"2s\"\ncrisis_responders = 100").await else {
        return;
    };
    eventually("a leader", || async { c.leader().await.is_some() }).await;
    let leader = c.leader().await.unwrap();
    let follower = 1 - leader;
    let tickets = 100;
    for id in 1..=tickets {
        c.seed(id);
    }
    // Half the storm, then kill -9 the leader, then the rest to the survivor.
    for id in 1..=tickets / 2 {
        c.send((id % 2) as usize, id).await;
    }
    c.nodes[leader].kill().await;
    let killed = Instant::now();
    for id in tickets / 2 + 1..=tickets {
        c.send(follower, id).await;
    }
    while c.nodes[follower].ready().await["role"] != "leader" {
        assert!(
            killed.elapsed() < TTL + Duration::from_secs(1),
            "no takeover within TTL + 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let takeover = killed.elapsed();
    println!("ha: takeover after leader kill -9 took {takeover:?} (TTL {TTL:?})");
    let pd = &c.vendors.pagerduty;
    eventually(
        "every ticket paged and, unacknowledged, escalated",
        || async {
            let escalated: std::collections::BTreeSet<String> =
                pd.escalations().into_iter().map(|(id, _)| id).collect();
            (1..=tickets).all(|id| {
                pd.incident_by_key(&format!("zendesk-{id}"))
                    .is_some_and(|i| escalated.contains(&i.id))
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A trigger the killed leader sent but could not record is sent again by
    // the new leader with the same dedup_key: PagerDuty opens no second
    // incident, so nobody is paged twice.
    for id in 1..=tickets {
        assert_eq!(
            pd.opened_for(&format!("zendesk-{id}")),
            1,
            "ticket {id} paged once"
        );
    }
    assert_eq!(
        pd.escalations().len(),
        tickets as usize,
        "every deadline fired exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_that_wakes_up_delivers_nothing() {
    let Some(c) = cluster(2, "ack_timeout = \"1h\"").await else {
        return;
    };
    eventually("a leader", || async { c.leader().await.is_some() }).await;
    let leader = c.leader().await.unwrap();
    let follower = 1 - leader;
    // The leader's first delivery fails, so it holds a retry for later...
    c.vendors.pagerduty.events_faults.push(
        Fault::Status {
            status: 503,
            retry_after: Some(2),
        },
        1,
    );
    c.seed(1);
    c.send(follower, 1).await;
    eventually("the leader tried once", || async {
        c.vendors.pagerduty.events_faults.is_empty()
    })
    .await;
    // ...and is paused (SIGSTOP) past its TTL.
    c.nodes[leader].signal("STOP");
    let paused = Instant::now();
    eventually("the follower takes over and pages", || async {
        c.triggers(1) == 1
    })
    .await;
    assert!(
        paused.elapsed() >= TTL,
        "the follower waited for the lease to lapse"
    );
    c.nodes[leader].signal("CONT");
    // The old leader wakes up with its retry due: it must not send it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.triggers(1),
        1,
        "the old leader delivered after losing its lease"
    );
    assert_eq!(c.nodes[leader].ready().await["role"], "follower");
    assert_eq!(c.nodes[follower].ready().await["role"], "leader");
    let ready = c.nodes[follower].ready().await;
    assert!(ready["lease"]["holder"].is_string(), "{ready}");
}
