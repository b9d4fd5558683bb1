//! Broker outages: requests get 503 and nothing of them is visible; retries after the
//! broker is back succeed, and the topic holds each event exactly once.

use crate::helpers::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_gives_503_and_retries_after_broker_up_land_each_event_once() {
    let mut f = Fixture::new(3);
    f.config.kafka.batch_timeout = Duration::from_secs(2);
    f.config.kafka.producers = 2;
    let gw = f.gateway().await;

    let batch = |from: usize| {
        ndjson(
            &(from..from + 50)
                .map(|i| event(&format!("F-{i}")))
                .collect::<Vec<_>>(),
        )
    };
    let (s, r) = post(gw.addr, Some(TOKEN), batch(0)).await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(50)), "{r}");

    f.broker.down().unwrap();
    for from in [50, 100] {
        let (s, r) = post(gw.addr, Some(TOKEN), batch(from)).await;
        assert_eq!(s, 503, "{r}");
        assert_eq!(r["error"]["code"], "broker_unavailable");
        assert!(r.get("accepted").is_none(), "nothing is reported accepted");
    }
    f.broker.up().unwrap();

    // The portal retries until accepted, as the simulator does.
    for from in [50, 100] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (s, r) = post(gw.addr, Some(TOKEN), batch(from)).await;
            if s == 200 {
                assert_eq!(r["accepted"], 50);
                break;
            }
            assert_eq!(s, 503, "{r}");
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not recover"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let records = read(&f, &f.config.topics.events, 150);
    let mut count = BTreeMap::<String, usize>::new();
    for r in &records {
        *count.entry(r.key.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(count.len(), 150, "every event is on the topic");
    let dup: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "events seen more than once: {dup:?}");
    gw.stop().await.unwrap();
}
