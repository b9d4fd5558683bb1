use super::*;
use crate::event::format_ts;
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

fn validator() -> &'static Validator {
    static V: std::sync::OnceLock<Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| Validator::new(Arc::new(Reference::embedded()), ValidatorConfig::default()))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 7, 10, 0, 0, 0).unwrap()
}

fn base() -> Value {
    json!({
        "dossier_id": "H58.22738-240605-0001",
        "procedure_code": "1.001193",
        "locality_code": "22738",
        "channel": "online",
        "status": "processed",
        "received_at": "2024-06-05T08:30:00+07:00",
        "due_at": "2024-06-07T17:00:00+07:00",
        "finished_at": "2024-06-06T10:00:00+07:00",
        "updated_at": "2024-06-06T10:00:00+07:00"
    })
}

fn with(mut v: Value, k: &str, x: Value) -> Vec<u8> {
    if x.is_null() {
        v.as_object_mut().unwrap().remove(k);
    } else {
        v[k] = x;
    }
    serde_json::to_vec(&v).unwrap()
}

fn reason(raw: &[u8]) -> Reason {
    validator()
        .parse_record(raw, now())
        .expect_err("should be rejected")
        .rejection
        .reason
}

#[test]
fn a_canonical_record_is_accepted_and_normalised() {
    let raw = with(base(), "received_at", json!("2024-06-05T01:30:00Z"));
    let e = validator().parse_record(&raw, now()).unwrap();
    assert_eq!(
        format_ts(&e.received_at.unwrap()),
        "2024-06-05T08:30:00+07:00"
    );
    assert_eq!(e.channel, Channel::Online);
    let again = validator()
        .parse_record(&e.to_canonical_json(), now())
        .unwrap();
    assert_eq!(again, e, "canonical JSON parses back to the same event");
}

#[test]
fn nfd_text_and_dotless_codes_are_normalised() {
    let mut v = base();
    v["procedure_code"] = json!(" 1001193 ");
    v["agency"] = json!("UBND phu\u{31b}o\u{31b}\u{300}ng \u{110}o\u{302} Vinh");
    v["received_at"] = json!("05/06/2024 08:30");
    let e = validator()
        .parse_record(&serde_json::to_vec(&v).unwrap(), now())
        .unwrap();
    assert_eq!(e.procedure_code, "1.001193");
    assert_eq!(e.agency.as_deref(), Some("UBND phường Đô Vinh"));
    assert_eq!(
        format_ts(&e.received_at.unwrap()),
        "2024-06-05T08:30:00+07:00"
    );
}

#[test]
fn a_bare_due_date_means_the_end_of_that_day() {
    let mut v = base();
    v["due_at"] = json!("05/06/2024");
    v["finished_at"] = json!("2024-06-05");
    let e = validator()
        .parse_record(&serde_json::to_vec(&v).unwrap(), now())
        .unwrap();
    assert_eq!(format_ts(&e.due_at.unwrap()), "2024-06-05T23:59:59+07:00");
    assert_eq!(
        format_ts(&e.finished_at.unwrap()),
        "2024-06-05T23:59:59+07:00"
    );
}

#[test]
fn invalid_utf8_says_where_it_starts() {
    let mut raw = "{\"dossier_id\":\"Hồ sơ \u{1}\"}".as_bytes().to_vec();
    let at = raw.iter().position(|&c| c == 1).unwrap();
    raw[at] = 0xC3; // a lead byte followed by a quote: invalid from here
    let err = validator().parse_record(&raw, now()).unwrap_err();
    assert_eq!(err.rejection.reason, Reason::InvalidUtf8);
    assert!(
        err.rejection.detail.ends_with(&format!("at byte {at}")),
        "{:?}",
        err.rejection
    );
}

#[test]
fn every_rule_has_its_reason() {
    let b = base;
    assert_eq!(reason(b"\xff\xfe{}"), Reason::InvalidUtf8);
    assert_eq!(reason(b"{\"dossier_id\": "), Reason::MalformedJson);
    assert_eq!(reason(b"[1,2]"), Reason::NotAnObject);
    assert_eq!(
        reason(&with(b(), "dossier_id", Value::Null)),
        Reason::MissingField
    );
    assert_eq!(
        reason(&with(b(), "dossier_id", json!("   "))),
        Reason::MissingField
    );
    assert_eq!(
        reason(&with(b(), "locality_code", json!(22738))),
        Reason::InvalidField
    );
    assert_eq!(
        reason(&with(b(), "channel", json!("fax"))),
        Reason::UnknownChannel
    );
    assert_eq!(
        reason(&with(b(), "status", json!("done"))),
        Reason::UnknownStatus
    );
    assert_eq!(
        reason(&with(b(), "updated_at", json!("2024-13-45"))),
        Reason::InvalidDate
    );
    assert_eq!(
        reason(&with(b(), "received_at", Value::Null)),
        Reason::MissingField
    );
    assert_eq!(
        reason(&with(
            b(),
            "finished_at",
            json!("2024-06-04T08:00:00+07:00")
        )),
        Reason::FinishedBeforeReceived
    );
    assert_eq!(
        reason(&with(b(), "due_at", json!("2024-06-01T08:00:00+07:00"))),
        Reason::DueBeforeReceived
    );
    assert_eq!(
        reason(&with(b(), "locality_code", json!("99999"))),
        Reason::UnknownLocality
    );
    let future = with(
        with_value(
            with_value(b(), "due_at", Value::Null),
            "finished_at",
            Value::Null,
        ),
        "received_at",
        json!("2024-07-10T07:11:00+07:00"),
    );
    assert_eq!(reason(&future), Reason::ReceivedInFuture);
    let skew = with(
        with_value(
            with_value(b(), "due_at", Value::Null),
            "finished_at",
            Value::Null,
        ),
        "received_at",
        json!("2024-07-10T07:09:00+07:00"),
    );
    assert!(
        validator().parse_record(&skew, now()).is_ok(),
        "ten minutes of clock skew are tolerated"
    );
    let big = with(b(), "procedure_name", json!("x".repeat(70_000)));
    assert_eq!(reason(&big), Reason::OversizeRecord);
}

fn with_value(v: Value, k: &str, x: Value) -> Value {
    serde_json::from_slice(&with(v, k, x)).unwrap()
}

#[test]
fn a_new_dossier_needs_no_received_at() {
    let v = with_value(
        with_value(
            with_value(base(), "received_at", Value::Null),
            "finished_at",
            Value::Null,
        ),
        "status",
        json!("new"),
    );
    assert!(
        validator()
            .parse_record(&serde_json::to_vec(&v).unwrap(), now())
            .is_ok()
    );
}

#[test]
fn unknown_fields_are_dropped_not_forwarded() {
    let raw = with(base(), "applicant_phone", json!("0901234567"));
    let e = validator().parse_record(&raw, now()).unwrap();
    assert!(
        !String::from_utf8(e.to_canonical_json())
            .unwrap()
            .contains("0901234567")
    );
    let bad = with(
        with_value(base(), "applicant_phone", json!("0901234567")),
        "status",
        json!("???"),
    );
    let r = validator().parse_record(&bad, now()).unwrap_err();
    assert!(
        !serde_json::to_string(&r.redacted)
            .unwrap()
            .contains("0901234567")
    );
    assert_eq!(r.dossier_id.as_deref(), Some("H58.22738-240605-0001"));
}

fn dvcqg() -> Value {
    json!({
        "MaHoSo": "000.00.22.H58-240605-0007",
        "MaTTHC": "1001193",
        "TenTTHC": "Đăng ky\u{301} khai sinh",
        "KenhThucHien": 2,
        "NgayTiepNhan": "20240605083000",
        "NgayHenTra": "20240607170000",
        "NgayKetThucXuLy": "",
        "TrangThaiHoSo": "4",
        "DonViXuLy": "UBND phường Đô Vinh",
        "ChuHoSo": "Nguyễn Văn A",
        "SoGiayToChuHoSo": "058090001234",
        "DinhDanhCHS": "058090001234",
        "SoDienThoai": "0901234567",
        "Email": "a@example.vn",
        "DiaChiThuongTru": "12 Thống Nhất",
        "HoSoCoThanhPhanSoHoa": 1
    })
}

#[test]
fn a_dvcqg_record_maps_to_the_contract_without_personal_data() {
    let raw = serde_json::to_vec(&dvcqg()).unwrap();
    let e = validator().parse_record(&raw, now()).unwrap();
    assert_eq!(e.dossier_id, "000.00.22.H58-240605-0007");
    assert_eq!(e.procedure_code, "1.001193");
    assert_eq!(e.procedure_name.as_deref(), Some("Đăng ký khai sinh"));
    assert_eq!(e.channel, Channel::Online);
    assert_eq!(e.status, Status::Processing);
    assert_eq!(e.locality_code, "22738", "from the agencies table");
    assert_eq!(e.finished_at, None, "an empty string is absent");
    assert_eq!(format_ts(&e.updated_at), "2024-06-05T08:30:00+07:00");
    assert_eq!(e.source.as_deref(), Some("dvcqg"));
    let out = String::from_utf8(e.to_canonical_json()).unwrap();
    for pii in [
        "Nguyễn Văn A",
        "058090001234",
        "0901234567",
        "a@example.vn",
        "Thống Nhất",
    ] {
        assert!(!out.contains(pii), "{pii} leaked into {out}");
    }
}

#[test]
fn dvcqg_rejections_are_redacted_to_the_mapping() {
    let mut v = dvcqg();
    v["TrangThaiHoSo"] = json!(11);
    let r = validator()
        .parse_record(&serde_json::to_vec(&v).unwrap(), now())
        .unwrap_err();
    assert_eq!(r.rejection.reason, Reason::UnknownStatus);
    assert_eq!(r.shape, Some(Shape::Dvcqg));
    let kept: Vec<_> = r.redacted.as_ref().unwrap().keys().cloned().collect();
    assert!(
        kept.iter()
            .all(|k| dvcqg::MAPPED_FIELDS.contains(&k.as_str())),
        "{kept:?}"
    );
    let text = format!("{r:?}");
    for pii in ["Nguyễn Văn A", "058090001234", "0901234567", "a@example.vn"] {
        assert!(!text.contains(pii));
    }
}

#[test]
fn dvcqg_channels_statuses_and_agencies() {
    let parse = |k: &str, x: Value| {
        let mut v = dvcqg();
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x;
        }
        validator().parse_record(&serde_json::to_vec(&v).unwrap(), now())
    };
    assert_eq!(
        parse("KenhThucHien", Value::Null).unwrap().channel,
        Channel::InPerson
    );
    assert_eq!(
        parse("KenhThucHien", json!("3")).unwrap().channel,
        Channel::Postal
    );
    assert_eq!(
        parse("KenhThucHien", json!(9))
            .unwrap_err()
            .rejection
            .reason,
        Reason::UnknownChannel
    );
    assert_eq!(
        parse("TrangThaiHoSo", json!(10)).unwrap().status,
        Status::Returned
    );
    assert_eq!(
        parse("DonViXuLy", json!("UBND xã Không Có"))
            .unwrap_err()
            .rejection
            .reason,
        Reason::UnknownAgency
    );
    assert_eq!(
        parse("MaDiaBan", json!("582")).unwrap().locality_code,
        "582"
    );
    let numeric = parse("NgayTiepNhan", json!(20240605083000u64)).unwrap();
    assert_eq!(
        format_ts(&numeric.received_at.unwrap()),
        "2024-06-05T08:30:00+07:00"
    );
}

#[test]
fn bodies_split_into_records_with_their_index() {
    let one = split_body(b" {\"a\": 1,\n \"b\": 2} ");
    assert_eq!(one.len(), 1);
    let arr = split_body(b"[{\"a\":1}, 5, {\"b\":2}]");
    assert_eq!(arr.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2]);
    let nd = split_body(b"{\"a\":1}\n\n{\"b\":2}\n{broken\n");
    assert_eq!(nd.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 2, 3]);
    assert_eq!(
        split_body(b"[{\"a\":1},").len(),
        1,
        "a broken array is one bad record"
    );
    assert!(split_body(b"  \n ").is_empty());
}

#[test]
fn versions_order_by_update_then_status() {
    let a: DossierEvent = serde_json::from_value(base()).unwrap();
    let mut b = a.clone();
    b.status = Status::Returned;
    assert!(b.supersedes(&a) && !a.supersedes(&b));
    let mut c = a.clone();
    c.updated_at += chrono::Duration::seconds(1);
    c.status = Status::Received;
    assert!(c.supersedes(&b), "a later update wins over a later status");
}

fn arb_event() -> impl Strategy<Value = DossierEvent> {
    let codes = prop::sample::select(vec!["22738", "582", "58", "79", "00004", "26734"]);
    let channel = prop::sample::select(Channel::ALL.to_vec());
    let status = prop::sample::select(Status::ALL.to_vec());
    let text = "[a-zA-Z0-9ăâđêôơưáàảãạếềểễệ .\\-]{1,30}";
    (
        (
            "[A-Z0-9.\\-]{1,24}",
            "[0-9]\\.[0-9]{6}",
            codes,
            channel,
            status,
        ),
        (
            0i64..86_400 * 400,
            0i64..86_400 * 60,
            0i64..86_400 * 60,
            0i64..86_400,
        ),
        (
            prop::option::of(text),
            prop::option::of(text),
            prop::option::of("[a-z0-9\\-]{1,20}"),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (id, proc, loc, channel, status),
                (r, due, fin, upd),
                (pname, agency, eid, has_due, has_fin),
            )| {
                let t0 = crate::event::ict()
                    .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                    .unwrap();
                let received = t0 + chrono::Duration::seconds(r);
                let finished = has_fin.then(|| received + chrono::Duration::seconds(fin));
                DossierEvent {
                    dossier_id: id,
                    procedure_code: proc,
                    procedure_name: pname.and_then(|s| normalize::text(&s).map(|t| t.into_owned())),
                    locality_code: loc.to_string(),
                    agency: agency.and_then(|s| normalize::text(&s).map(|t| t.into_owned())),
                    channel,
                    status,
                    received_at: (status != Status::New || r % 2 == 0).then_some(received),
                    due_at: has_due.then(|| received + chrono::Duration::seconds(due)),
                    finished_at: finished,
                    updated_at: finished.unwrap_or(received) + chrono::Duration::seconds(upd),
                    event_id: eid,
                    source: Some("sim".into()),
                }
            },
        )
}

proptest! {
    #[test]
    fn canonical_events_round_trip(e in arb_event()) {
        let bytes = e.to_canonical_json();
        let back = validator().parse_record(&bytes, Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()).unwrap();
        prop_assert_eq!(&back, &e);
        prop_assert_eq!(back.to_canonical_json(), bytes);
    }
}

#[test]
fn an_unknown_code_maps_by_the_catalogue_name() {
    let parse = |code: &str, name: &str| {
        let mut v = base();
        v["procedure_code"] = code.into();
        v["procedure_name"] = name.into();
        validator()
            .parse_record(&serde_json::to_vec(&v).unwrap(), now())
            .unwrap()
            .procedure_code
    };
    // NFD, upper case and doubled spaces: still the catalogue's "Đăng ký khai tử".
    assert_eq!(parse("9.123456", "ĐĂNG  KY\u{301} KHAI TỬ"), "DA06-12");
    assert_eq!(parse("9.123456", "Đăng ký khai tử"), "DA06-12");
    // A known code keeps its service whatever the name; an unknown name stays unmapped.
    assert_eq!(parse("1.001193", "Đăng ký khai tử"), "1.001193");
    assert_eq!(parse("9.123456", "Thủ tục khác"), "9.123456");
    assert_eq!(parse("C08_XPHCDB", "Nộp phạt"), "C08_XPHCDB");
}

/// A JSON value of any type, as portals send them for contract and DVCQG fields.
fn arb_field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        Just(json!([1, "x"])),
        Just(json!({"k": "v"})),
        prop::sample::select(vec![
            "online",
            "in_person",
            " 2 ",
            "processed",
            "new",
            "5",
            "22738",
            "1001193",
            "2024-06-05T08:30:00+07:00",
            "05/06/2024",
            "20240605083000",
            "Đăng ky\u{301}",
            "H58-1",
            "  ",
            "Ủy ban nhân dân phường Ba Đình",
            "tab\there",
        ])
        .prop_map(Value::from),
    ]
}

proptest! {
    /// The typed fast path and the `Value` path give the same event or the same
    /// rejection (reason, field, shape, redacted payload), whatever the record holds.
    #[test]
    fn the_fast_path_agrees_with_the_value_path(
        fields in prop::collection::vec(
            (prop::sample::select(
                CANONICAL_FIELDS.iter().chain(dvcqg::MAPPED_FIELDS.iter()).copied()
                    .chain(["ChuHoSo", "extra"]).collect::<Vec<_>>()),
             arb_field_value()),
            0..12),
        start in prop::sample::select(vec![Value::Null, base(), dvcqg()]),
    ) {
        let mut v = if start.is_null() { json!({}) } else { start };
        for (k, x) in fields {
            v[k] = x;
        }
        let raw = serde_json::to_vec(&v).unwrap();
        let text = std::str::from_utf8(&raw).unwrap();
        let fast = validator().parse_record(&raw, now());
        let mut e = DossierEvent::empty();
        let slow = validator().parse_value(text, raw.len(), now(), &mut e).map(|()| e);
        prop_assert_eq!(fast, slow);
    }

    /// Records parsed one after the other into the same event (what a batch reader does)
    /// give what each gives parsed alone: nothing of one is left in the next.
    #[test]
    fn an_event_parsed_into_again_keeps_nothing_of_the_last(
        records in prop::collection::vec(
            prop::collection::vec(
                (prop::sample::select(
                    CANONICAL_FIELDS.iter().chain(dvcqg::MAPPED_FIELDS.iter()).copied()
                        .collect::<Vec<_>>()),
                 arb_field_value()),
                0..12),
            1..6),
        start in prop::sample::select(vec![base(), dvcqg()]),
    ) {
        let v = validator();
        let mut reused = DossierEvent::empty();
        for fields in records {
            let mut record = start.clone();
            for (k, x) in fields {
                record[k] = x;
            }
            let text = serde_json::to_string(&record).unwrap();
            let alone = v.parse_text(&text, now());
            let again = v.parse_text_into(&text, now(), &mut reused).map(|()| reused.clone());
            prop_assert_eq!(alone, again);
        }
    }
}
