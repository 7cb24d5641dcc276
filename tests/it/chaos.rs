//! kill -9 at random moments under a storm of tickets, and a power cut
//! played by putting back the store's files: nothing lost, nothing paged
//! twice. Size and seed from the environment:
//! `PAGERD_CHAOS_TICKETS` (1000), `PAGERD_CHAOS_KILLS` (12),
//! `PAGERD_CHAOS_SEED` (random; printed, to replay a failure).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pagerd::fakes::stand_ins::{Extra, Options, StandIns, secrets};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::Mutex;

use crate::util::Proc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ACK_TIMEOUT_S: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_under_a_storm_loses_nothing_and_pages_nothing_twice() {
    let tickets = env_or("PAGERD_CHAOS_TICKETS", 1000);
    let kills_wanted = env_or("PAGERD_CHAOS_KILLS", 12) as usize;
    let seed = std::env::var("PAGERD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!(
        "chaos: {tickets} tickets, {kills_wanted} kills, seed {seed} (replay: PAGERD_CHAOS_SEED={seed})"
    );
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    std::mem::forget(dir); // keep the log for a failure's post-mortem
    let vendors = Arc::new(StandIns::start(Options::default()).await.unwrap());
    let extra = Extra {
        policy: format!("ack_timeout = \"{ACK_TIMEOUT_S}s\"\ncrisis_responders = 1000"),
        pagerduty: "poll_interval = \"500ms\"\nevents_per_minute = 0".into(),
        zendesk: "poll_interval = \"off\"".into(),
        ..Extra::default()
    };
    let proc = Proc::for_stand_ins(&vendors, &dir_path, &extra);
    let (addr, log) = (proc.addr, proc.log.clone());
    let daemon = Arc::new(Mutex::new(proc));
    daemon.lock().await.start().await;
    vendors.pagerduty.set_webhook(
        format!("http://{addr}/webhooks/pagerduty"),
        secrets::PD_WEBHOOK.into(),
    );

    // Who will acknowledge: about a third of the tickets, chosen by the seed.
    let acked: BTreeSet<u64> = (1..=tickets).filter(|_| rng.random_bool(0.3)).collect();
    let storm_done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    // The storm: every ticket, plus duplicates, each retried until pagerd
    // answers 200 (as Zendesk retries a failed webhook).
    let next = Arc::new(AtomicUsize::new(0));
    let storm = {
        let vendors = vendors.clone();
        let done = storm_done.clone();
        let next = next.clone();
        let mut order: Vec<u64> = (1..=tickets).collect();
        order.extend((0..tickets / 5).map(|_| rng.random_range(1..=tickets)));
        tokio::spawn(async move {
            let url = format!("http://{addr}/webhooks/zendesk");
            let order = Arc::new(order);
            let workers: Vec<_> = (0..32)
                .map(|_| {
                    let (vendors, next, order, url) =
                        (vendors.clone(), next.clone(), order.clone(), url.clone());
                    tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&id) = order.get(i) else { break };
                            // Seed once: re-seeding would reset the ticket's tags in the fake.
                            if vendors.zendesk.ticket(id).is_none() {
                                vendors.zendesk.upsert_ticket(crate::util::urgent(
                                    id,
                                    &format!("Instance {id} down"),
                                ));
                            }
                            while vendors.zendesk.send_webhook(&url, id).await != Ok(200) {
                                tokio::time::sleep(Duration::from_millis(30)).await;
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await.unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    // The engineers: acknowledge in the phone app as soon as the page shows;
    // PagerDuty redelivers webhooks that pagerd did not take.
    let acker = {
        let vendors = vendors.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut pending = acked;
            loop {
                // PagerDuty retries a webhook that met a dead daemon within
                // seconds, not once every page is acknowledged: an ack sent
                // during a kill is redelivered each round.
                let undelivered = vendors.pagerduty.redeliver_failed().await;
                if pending.is_empty() && undelivered == 0 {
                    break;
                }
                // Each engineer taps Acknowledge on their own phone: at
                // once, not one after another (a serial loop of 300
                // webhooks outlasted the ack timeout on a busy machine).
                let mut done = Vec::new();
                let mut taps = tokio::task::JoinSet::new();
                for &id in &pending {
                    let key = format!("zendesk-{id}");
                    if vendors.pagerduty.opened_for(&key) == 1 {
                        let vendors = vendors.clone();
                        taps.spawn(async move {
                            let _ = vendors
                                .pagerduty
                                .acknowledge(&key, &format!("eng-{id}"))
                                .await;
                        });
                        done.push(id);
                    }
                }
                while taps.join_next().await.is_some() {}
                for id in done {
                    pending.remove(&id);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // kill -9 during intake and dispatch (at random points of the storm),
    // then during the escalation wave.
    let mut kills = 0;
    let mut points: Vec<usize> = (0..kills_wanted / 2)
        .map(|_| rng.random_range(0..tickets as usize))
        .collect();
    points.sort_unstable();
    for point in points {
        while next.load(Ordering::Relaxed) < point && !storm_done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut d = daemon.lock().await;
        d.kill().await;
        kills += 1;
        d.start().await;
    }
    storm.await.unwrap();
    let storm_secs = started.elapsed().as_secs_f64();
    let wave = Duration::from_secs(ACK_TIMEOUT_S);
    if started.elapsed() < wave {
        tokio::time::sleep(wave - started.elapsed()).await;
    }
    while kills < kills_wanted {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..300))).await;
        let mut d = daemon.lock().await;
        d.kill().await;
        kills += 1;
        d.start().await;
    }
    acker.await.unwrap();

    // Let everything settle, then count what the vendors saw.
    let pd = &vendors.pagerduty;
    let deadline = Instant::now() + Duration::from_secs(90);
    let settled = || {
        let incidents = pd.incidents();
        let by_key: HashMap<&str, &pagerd::fakes::pagerduty::IncidentRecord> = incidents
            .iter()
            .map(|i| (i.dedup_key.as_str(), i))
            .collect();
        let escalated: BTreeSet<String> = pd.escalations().into_iter().map(|(id, _)| id).collect();
        (1..=tickets).all(|id| {
            let key = format!("zendesk-{id}");
            let Some(inc) = by_key.get(key.as_str()) else {
                return false;
            };
            if acked.contains(&id) {
                vendors.zendesk.comments(id).len() == 1
            } else {
                escalated.contains(&inc.id)
            }
        })
    };
    let unsettled = || {
        let escalated: BTreeSet<String> = pd.escalations().into_iter().map(|(id, _)| id).collect();
        let (mut unpaged, mut unescalated, mut uncommented) = (0, 0, 0);
        for id in 1..=tickets {
            match pd.incident_by_key(&format!("zendesk-{id}")) {
                None => unpaged += 1,
                Some(inc) if acked.contains(&id) => {
                    let n = vendors.zendesk.comments(id).len();
                    if n != 1 {
                        uncommented += 1;
                        eprintln!("ticket {id}: {n} comments; PagerDuty: {inc:?}");
                    }
                }
                Some(inc) => unescalated += usize::from(!escalated.contains(&inc.id)),
            }
        }
        format!(
            "unpaged {unpaged}, unescalated {unescalated}, acked without exactly one comment {uncommented}"
        )
    };
    while !settled() {
        assert!(
            Instant::now() < deadline,
            "not settled after 90 s ({}); seed {seed}; daemon log: {}",
            unsettled(),
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let incidents = pd.incidents();
    let escalations = pd.escalations();
    let mut per_incident: HashMap<&str, usize> = HashMap::new();
    for (id, level) in &escalations {
        assert_eq!(*level, 2);
        *per_incident.entry(id.as_str()).or_default() += 1;
    }
    let mut lost = 0;
    let mut duplicated_pages = 0;
    let mut wrongly_escalated = 0;
    let mut repeated_escalations = 0;
    let mut comment_errors = 0;
    for id in 1..=tickets {
        let key = format!("zendesk-{id}");
        match pd.opened_for(&key) {
            0 => lost += 1,
            1 => {}
            _ => duplicated_pages += 1,
        }
        let Some(inc) = incidents.iter().find(|i| i.dedup_key == key) else {
            continue;
        };
        let n = per_incident.get(inc.id.as_str()).copied().unwrap_or(0);
        let comments = vendors.zendesk.comments(id).len();
        if acked.contains(&id) {
            wrongly_escalated += usize::from(n > 0);
            comment_errors += usize::from(comments != 1);
        } else {
            repeated_escalations += n.saturating_sub(1);
            if n > 1 && repeated_escalations < 4 {
                eprintln!(
                    "ticket {id}: {n} escalation requests; notes {:?}",
                    inc.notes
                );
            }
            comment_errors += usize::from(comments != 0);
        }
    }
    println!(
        "chaos result: tickets {tickets} (+{} duplicates sent), kills {kills}, storm {storm_secs:.1}s, \
         acknowledged {}, escalated {}, lost {lost}, duplicated pages {duplicated_pages}, \
         escalations of acknowledged {wrongly_escalated}, repeated escalation requests {repeated_escalations}, \
         wrong comment counts {comment_errors}",
        tickets / 5,
        acked.len(),
        per_incident.len(),
    );
    assert_eq!(lost, 0, "seed {seed}");
    assert_eq!(duplicated_pages, 0, "seed {seed}");
    assert_eq!(wrongly_escalated, 0, "seed {seed}");
    assert_eq!(comment_errors, 0, "seed {seed}");
    assert_eq!(repeated_escalations, 0, "seed {seed}");
    assert!(kills >= kills_wanted);
    daemon.lock().await.kill().await;
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero_and_the_next_start_delivers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let vendors = StandIns::start(Options::default()).await.unwrap();
    // PagerDuty is down: the page stays in the outbox across the stop.
    vendors.pagerduty.events_faults.push(
        pagerd::fakes::Fault::Status {
            status: 503,
            retry_after: None,
        },
        1000,
    );
    let extra = Extra {
        pagerduty: "poll_interval = \"off\"".into(),
        ..Extra::default()
    };
    let mut daemon = Proc::for_stand_ins(&vendors, dir.path(), &extra);
    let addr = daemon.addr;
    daemon.start().await;
    urgent_ticket(&vendors, addr, 7).await;
    let status = daemon
        .terminate()
        .await
        .expect("exited within the grace period");
    assert!(status.success(), "{status:?}");
    assert_eq!(vendors.pagerduty.opened_for("zendesk-7"), 0);
    vendors.pagerduty.events_faults.clear();
    daemon.start().await;
    crate::util::eventually(
        "the page left in the outbox is delivered after restart",
        || async { vendors.pagerduty.opened_for("zendesk-7") == 1 },
    )
    .await;
    daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_during_the_crisis_wave_creates_one_doc_share_and_announcement_each() {
    let incidents: u64 = env_or("PAGERD_CHAOS_CRISES", 30);
    let seed = std::env::var("PAGERD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("crisis chaos: {incidents} crises, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        slack: true,
        google: true,
        ..Options::default()
    };
    let vendors = StandIns::start(opts).await.unwrap();
    let extra = Extra {
        policy: "ack_timeout = \"1h\"\ncrisis_after = \"1500ms\"\ncrisis_responders = 100".into(),
        pagerduty: "poll_interval = \"off\"\nevents_per_minute = 0".into(),
        zendesk: "poll_interval = \"off\"".into(),
        ..Extra::default()
    };
    let mut daemon = Proc::for_stand_ins(&vendors, dir.path(), &extra);
    let addr = daemon.addr;
    daemon.start().await;
    let url = format!("http://{addr}/webhooks/zendesk");
    for id in 1..=incidents {
        vendors
            .zendesk
            .upsert_ticket(crate::util::urgent(id, &format!("Instance {id} down")));
        assert_eq!(vendors.zendesk.send_webhook(&url, id).await, Ok(200));
    }
    // The crisis wave starts 1.5 s in: kill -9 through it.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut kills = 0;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..350))).await;
        daemon.kill().await;
        kills += 1;
        daemon.start().await;
    }
    let slack = vendors.slack.as_ref().unwrap();
    let google = vendors.google.as_ref().unwrap();
    let channels = ["infrastructure", "development", "general"];
    let done = || {
        google.docs().len() as u64 >= incidents
            && channels
                .iter()
                .all(|c| slack.top_level_in(c).len() as u64 >= incidents)
            && (1..=incidents).all(|id| {
                vendors
                    .zendesk
                    .comments(id)
                    .iter()
                    .any(|c| c.body.contains("crisis document"))
            })
            && google.docs().iter().all(|d| d.permissions.len() >= 3)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "crises not complete after 60 s; seed {seed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let docs = google.docs();
    assert_eq!(
        docs.len() as u64,
        incidents,
        "one doc per crisis; seed {seed}"
    );
    for doc in &docs {
        let domain = doc
            .permissions
            .iter()
            .filter(|p| p["type"] == "domain")
            .count();
        let customer = doc
            .permissions
            .iter()
            .filter(|p| p["emailAddress"] == "dana@customer.test")
            .count();
        assert_eq!(
            (domain, customer),
            (1, 1),
            "{}: {:?}; seed {seed}",
            doc.name,
            doc.permissions
        );
    }
    for c in channels {
        let top = slack.top_level_in(c);
        let markers: BTreeSet<_> = top.iter().map(|m| m.marker.clone()).collect();
        assert_eq!(
            top.len() as u64,
            incidents,
            "one announcement per crisis in #{c}; seed {seed}"
        );
        assert_eq!(markers.len(), top.len(), "no announcement twice in #{c}");
    }
    for id in 1..=incidents {
        let n = vendors
            .zendesk
            .comments(id)
            .iter()
            .filter(|c| c.body.contains("crisis document"))
            .count();
        assert_eq!(n, 1, "ticket {id}: doc link posted once; seed {seed}");
        let inc = vendors
            .pagerduty
            .incident_by_key(&format!("zendesk-{id}"))
            .unwrap();
        assert_eq!(
            inc.notes
                .iter()
                .filter(|n| n.contains("Crisis document"))
                .count(),
            1,
            "seed {seed}"
        );
    }
    println!(
        "crisis chaos result: {incidents} crises, {kills} kills: {} docs, 1 share each, one announcement per channel each",
        docs.len()
    );
    daemon.kill().await;
}

/// Files urgent ticket `id` in Zendesk and sends its webhook to the daemon
/// at `addr`, which must take it.
async fn urgent_ticket(vendors: &StandIns, addr: std::net::SocketAddr, id: u64) {
    vendors
        .zendesk
        .upsert_ticket(crate::util::urgent(id, "down"));
    let url = format!("http://{addr}/webhooks/zendesk");
    assert_eq!(vendors.zendesk.send_webhook(&url, id).await, Ok(200));
}

/// The timer's escalation leaves while its commit syncs. A power cut in
/// that window loses the commit after the request left: the daemon comes
/// back with the deadline still armed and fires it again. It must find
/// the escalation in PagerDuty's log, not page level 2 twice. The cut is
/// played by putting back a copy of the store made before the deadline
/// passed, after a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_whose_commit_a_power_cut_lost_is_not_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let vendors = StandIns::start(Options::default()).await.unwrap();
    let extra = Extra {
        policy: "ack_timeout = \"3s\"".into(),
        pagerduty: "poll_interval = \"off\"".into(),
        zendesk: "poll_interval = \"off\"".into(),
        ..Extra::default()
    };
    let mut daemon = Proc::for_stand_ins(&vendors, dir.path(), &extra);
    let addr = daemon.addr;
    daemon.start().await;
    urgent_ticket(&vendors, addr, 7).await;
    // Paged, the acknowledgement deadline armed, nothing left to send: the
    // store is at rest, and a copy of its files is what a power cut after
    // the next commit leaves.
    crate::util::eventually("paged, deadline armed, outbox settled", || async {
        let body = daemon.admin_get("/incidents/1").await;
        body["incident"]["deadlines"]["ack"].is_i64()
            && body["outbox"]
                .as_array()
                .is_some_and(|rows| rows.iter().all(|r| r["state"] == "delivered"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let files = ["pagerd.db", "pagerd.db-wal"];
    for f in files {
        std::fs::copy(dir.path().join(f), dir.path().join(format!("{f}.cut"))).unwrap();
    }
    assert!(
        vendors.pagerduty.escalations().is_empty(),
        "escalated early"
    );
    crate::util::eventually("escalated", || async {
        vendors.pagerduty.escalations().len() == 1
    })
    .await;
    daemon.kill().await;
    for f in files {
        std::fs::rename(dir.path().join(format!("{f}.cut")), dir.path().join(f)).unwrap();
    }
    // The index of the WAL is rebuilt from the WAL itself.
    let _ = std::fs::remove_file(dir.path().join("pagerd.db-shm"));
    daemon.start().await;
    crate::util::eventually("the deadline fired again and its row settled", || async {
        let body = daemon.admin_get("/incidents/1").await;
        body["incident"]["level"] == 2
            && body["outbox"].as_array().is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["effect"]["type"] == "pagerduty_escalate")
                    && rows.iter().all(|r| r["state"] == "delivered")
            })
    })
    .await;
    assert_eq!(
        vendors.pagerduty.escalations().len(),
        1,
        "level 2 paged twice"
    );
    assert_eq!(vendors.pagerduty.opened_for("zendesk-7"), 1);
    daemon.kill().await;
}
