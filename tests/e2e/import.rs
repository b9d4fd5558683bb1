//! `import` of NDJSON and CSV files through the real broker.

use crate::helpers::*;
use dvc_pulse_ingest::import::ImportOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_ndjson_imports_validate_like_the_gateway_and_resume() {
    let f = Fixture::new(2);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    std::fs::write(
        &csv,
        "dossier_id,procedure_code,locality_code,channel,status,received_at,updated_at\n\
         C-1,1.001193,22738,online,received,20240605083000,20240605083000\n\
         C-2,1.001193,22738,in_person,received,05/06/2024 09:00,05/06/2024 09:00\n\
         C-3,1.001193,99999,online,received,2024-06-05T08:00:00+07:00,2024-06-05T08:00:00+07:00\n",
    )
    .unwrap();
    let s = dvc_pulse_app::import::run(&f.config, &csv, &ImportOptions::default(), false)
        .await
        .unwrap();
    assert_eq!((s.records, s.accepted), (3, 2));
    assert_eq!(s.rejected.get("unknown_locality"), Some(&1));

    let nd = dir.path().join("export.ndjson");
    std::fs::write(
        &nd,
        ndjson(
            &(0..10)
                .map(|i| event(&format!("N-{i}")))
                .collect::<Vec<_>>(),
        ),
    )
    .unwrap();
    // Resume from line 4: lines 0..4 are skipped.
    let opts = ImportOptions {
        batch_size: 3,
        skip_before: 4,
    };
    let s = dvc_pulse_app::import::run(&f.config, &nd, &opts, false)
        .await
        .unwrap();
    assert_eq!(
        (s.records, s.accepted, s.committed_through),
        (6, 6, Some(9))
    );

    let keys: std::collections::BTreeSet<_> = read(&f, &f.config.topics.events, 8)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys.len(), 8);
    assert!(keys.contains("C-1") && keys.contains("N-4") && !keys.contains("N-3"));
    let dlq = read(&f, &f.config.topics.dead_letter, 1);
    let dl: serde_json::Value = serde_json::from_slice(&dlq[0].payload).unwrap();
    assert_eq!(dl["origin"], "import:export.csv");
    assert_eq!(dl["index"], 3, "the CSV line of the rejected row");
}
