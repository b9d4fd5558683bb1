//! The national portal's (DVCQG) dossier sync record, mapped to the canonical event.
//!
//! Only the fields in [`MAPPED_FIELDS`] are read. Everything else, the applicant's
//! personal data (`ChuHoSo`, `SoGiayToChuHoSo`, `DinhDanhCHS`, `SoDienThoai`, `Email`,
//! addresses) included, is dropped here: never stored, logged, forwarded or dead-lettered.

use crate::event::{Channel, DossierEvent, Status};
use crate::normalize;
use crate::parse::{Norm, Record, Scalar, date_of};
use crate::reason::{Reason, Rejection};
use crate::reference::Reference;
use std::borrow::Cow;

/// The DVCQG fields the adapter reads; the allow-list of dead-lettered payloads.
pub const MAPPED_FIELDS: [&str; 11] = [
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "KenhThucHien",
    "NgayTiepNhan",
    "NgayHenTra",
    "NgayKetThucXuLy",
    "TrangThaiHoSo",
    "DonViXuLy",
    // Not in every sync record: the statistics-office code of the unit, when known.
    "MaDiaBan",
    // Not in every sync record: when the local system last changed the dossier.
    "NgayCapNhat",
];

/// True when a JSON object is a DVCQG record rather than a canonical one.
pub(crate) fn is_dvcqg(m: &Record) -> bool {
    m.get("MaHoSo").is_some()
}

/// Maps a DVCQG record to a canonical event (cross-field rules are checked by the caller).
///
/// `updated_at` is `NgayCapNhat` when present, else the latest of the record's
/// received and finished times: deterministic, so a redelivery is byte-identical, and a
/// status change with the same dates is ordered by the later status.
// Long only because it maps the DVCQG fields one by one, in the record's order.
pub(crate) fn to_event(m: &Record, reference: &Reference) -> Result<DossierEvent, Rejection> {
    let text = |f: &'static str, norm: Norm| -> Result<Option<String>, Rejection> {
        match m.get(f) {
            None | Some(Scalar::Null) => Ok(None),
            Some(v) => v
                .text()
                .map(|s| norm(&s).map(Cow::into_owned))
                .ok_or_else(|| {
                    Rejection::field(
                        Reason::InvalidField,
                        f,
                        format!("{f} must be text or a number"),
                    )
                }),
        }
    };
    let dossier_id = text("MaHoSo", normalize::code)?
        .ok_or_else(|| Rejection::field(Reason::MissingField, "MaHoSo", "MaHoSo is required"))?;
    let procedure_code = text("MaTTHC", normalize::procedure_code)?
        .ok_or_else(|| Rejection::field(Reason::MissingField, "MaTTHC", "MaTTHC is required"))?;
    let channel = match text("KenhThucHien", normalize::code)?.as_deref() {
        None | Some("1") => Channel::InPerson,
        Some("2") => Channel::Online,
        Some("3") => Channel::Postal,
        Some(other) => {
            return Err(Rejection::field(
                Reason::UnknownChannel,
                "KenhThucHien",
                format!("{other:?} is not 1, 2 or 3"),
            ));
        }
    };
    let status_text = text("TrangThaiHoSo", normalize::code)?.ok_or_else(|| {
        Rejection::field(
            Reason::MissingField,
            "TrangThaiHoSo",
            "TrangThaiHoSo is required",
        )
    })?;
    let status = status_text
        .parse::<u64>()
        .ok()
        .and_then(Status::from_portal_number)
        .ok_or_else(|| {
            Rejection::field(
                Reason::UnknownStatus,
                "TrangThaiHoSo",
                format!("{status_text:?} is not a status from 1 to 10"),
            )
        })?;
    // Dates may come as numbers (`20240605083000`); read them as text first.
    let when = |f: &'static str, end_of_day: bool| -> Result<_, Rejection> {
        date_of(
            f,
            text(f, normalize::code_keep_space)?.as_deref(),
            end_of_day,
        )
    };
    let received_at = when("NgayTiepNhan", false)?;
    let finished_at = when("NgayKetThucXuLy", true)?;
    let updated_at = match when("NgayCapNhat", false)? {
        Some(t) => t,
        None => received_at
            .into_iter()
            .chain(finished_at)
            .max()
            .ok_or_else(|| {
                Rejection::field(
                    Reason::MissingField,
                    "NgayCapNhat",
                    "a record without NgayTiepNhan needs NgayCapNhat",
                )
            })?,
    };
    let agency = text("DonViXuLy", normalize::text)?;
    let locality_code = match text("MaDiaBan", normalize::code)? {
        Some(code) => code,
        None => {
            let agency = agency.as_deref().ok_or_else(|| {
                Rejection::field(
                    Reason::MissingField,
                    "MaDiaBan",
                    "a record without MaDiaBan needs DonViXuLy",
                )
            })?;
            reference
                .agencies
                .locality_of(agency)
                .map(str::to_string)
                .ok_or_else(|| {
                    Rejection::field(
                        Reason::UnknownAgency,
                        "DonViXuLy",
                        format!("{agency:?} is not in the agencies table"),
                    )
                })?
        }
    };
    Ok(DossierEvent {
        dossier_id,
        procedure_code,
        procedure_name: text("TenTTHC", normalize::text)?,
        locality_code,
        agency,
        channel,
        status,
        received_at,
        due_at: when("NgayHenTra", true)?,
        finished_at,
        updated_at,
        event_id: None,
        source: Some("dvcqg".to_string()),
    })
}
