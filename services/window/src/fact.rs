//! The compact contribution of one dossier version to the daily buckets.
//!
//! Days are Date32 (days since 1970-01-01) in Asia/Ho_Chi_Minh. Definitions, shared by
//! the streaming state and the batch SQL:
//! - *received*: has `received_at` and a status other than `new`/`rejected`; counted on
//!   the ICT day of `received_at`, by channel;
//! - *finished*: a received dossier with `finished_at`, counted on its day: on time when
//!   `finished_at <= due_at`, overdue when later, "no due date" without `due_at`;
//! - *closed* on the day of `finished_at`, or for `withdrawn`/`stopped`/`processed`/
//!   `returned` without it, on the day of `updated_at`; *pending* at the end of day D when
//!   received on or before D and not closed by D; pending *overdue* when also `due_at`'s
//!   day is on or before D.

use chrono::{DateTime, FixedOffset, NaiveDate};
use dvc_pulse_model::{Channel, DossierEvent, Status};

/// Marks an absent day.
pub const NO_DAY: i32 = i32::MIN;

/// The Date32 value of a calendar day.
pub fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32
}

/// The calendar day of a Date32 value.
pub fn day_date(n: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid") + chrono::Duration::days(n as i64)
}

/// The ICT calendar day (Date32) of an instant, by arithmetic on its microseconds (every
/// instant chrono holds fits them); the same day as converting it to ICT with chrono.
pub fn ict_day(t: &DateTime<FixedOffset>) -> i32 {
    ict_day_us(t.timestamp_micros())
}

/// The ICT calendar day (Date32) of an instant in microseconds since the epoch.
pub fn ict_day_us(us: i64) -> i32 {
    const DAY_US: i64 = 86_400_000_000;
    (us + 7 * 3_600_000_000).div_euclid(DAY_US) as i32
}

/// Channel as a small number: 0 online, 1 in person, 2 postal.
pub fn channel_index(c: Channel) -> u8 {
    match c {
        Channel::Online => 0,
        Channel::InPerson => 1,
        Channel::Postal => 2,
    }
}

/// A received dossier's days, ready to add to or retract from the buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    /// Day received.
    pub received: i32,
    /// Day finished, or [`NO_DAY`].
    pub finished: i32,
    /// Day closed (no longer pending), or [`NO_DAY`]; never before `received`.
    pub closed: i32,
    /// Day due, or [`NO_DAY`].
    pub due: i32,
    /// Channel index.
    pub channel: u8,
    /// Finished on time (`finished_at <= due_at`); meaningful only when finished with a due date.
    pub on_time: bool,
}

impl Days {
    /// The days of a version, or `None` when it is not a received dossier.
    pub fn of(e: &DossierEvent) -> Option<Days> {
        let r = e.received_at.as_ref().filter(|_| e.status.is_received())?;
        let received = ict_day(r);
        let finished = e.finished_at.as_ref().map_or(NO_DAY, ict_day);
        let closed = Days::closed_day(
            received,
            finished,
            e.status.portal_number(),
            e.updated_at.timestamp_micros(),
        );
        let on_time = match (&e.finished_at, &e.due_at) {
            (Some(f), Some(d)) => f <= d,
            _ => false,
        };
        Some(Days {
            received,
            finished,
            closed,
            due: e.due_at.as_ref().map_or(NO_DAY, ict_day),
            channel: channel_index(e.channel),
            on_time,
        })
    }

    /// The day a received dossier stops being pending: the day it finished, or for a
    /// withdrawn, stopped, processed or returned one without `finished_at` the day of its
    /// `updated_at`; never before the day received. [`NO_DAY`] while pending (and for a
    /// dossier not received).
    pub fn closed_day(received: i32, finished: i32, status: u8, updated_us: i64) -> i32 {
        if received == NO_DAY {
            return NO_DAY;
        }
        let terminal = matches!(
            Status::from_portal_number(status as u64),
            Some(Status::Withdrawn | Status::Stopped | Status::Processed | Status::Returned)
        );
        let closed = match (finished, terminal) {
            (NO_DAY, true) => ict_day_us(updated_us),
            (f, _) => f,
        };
        if closed == NO_DAY {
            NO_DAY
        } else {
            closed.max(received)
        }
    }

    /// The bucket deltas of this dossier: `(day, measure, +1)` entries.
    pub fn deltas(&self, mut f: impl FnMut(i32, Counter)) {
        f(self.received, Counter::Received);
        f(
            self.received,
            [Counter::Online, Counter::InPerson, Counter::Postal][self.channel as usize],
        );
        if self.finished != NO_DAY {
            f(self.finished, Counter::Finished);
            f(
                self.finished,
                match (self.due, self.on_time) {
                    (NO_DAY, _) => Counter::FinishedNoDue,
                    (_, true) => Counter::OnTime,
                    (_, false) => Counter::Overdue,
                },
            );
        }
        f(self.received, Counter::PendingOpen);
        if self.closed != NO_DAY {
            f(self.closed, Counter::PendingClose);
        }
        if self.due != NO_DAY {
            let start = self.due.max(self.received);
            if self.closed == NO_DAY || start < self.closed {
                f(start, Counter::OverdueOpen);
                if self.closed != NO_DAY {
                    f(self.closed, Counter::OverdueClose);
                }
            }
        }
    }
}

/// The counters of a daily bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Counter {
    /// Received that day.
    Received,
    /// Received online.
    Online,
    /// Received in person.
    InPerson,
    /// Received by post.
    Postal,
    /// Finished that day.
    Finished,
    /// Finished that day, on time.
    OnTime,
    /// Finished that day, after the due date.
    Overdue,
    /// Finished that day, without a due date.
    FinishedNoDue,
    /// Became pending that day (prefix sums give the pending count).
    PendingOpen,
    /// Stopped being pending that day.
    PendingClose,
    /// Became pending and overdue that day.
    OverdueOpen,
    /// Stopped being pending and overdue that day.
    OverdueClose,
}

impl Counter {
    /// All measures, in column order.
    pub const ALL: [Counter; 12] = [
        Counter::Received,
        Counter::Online,
        Counter::InPerson,
        Counter::Postal,
        Counter::Finished,
        Counter::OnTime,
        Counter::Overdue,
        Counter::FinishedNoDue,
        Counter::PendingOpen,
        Counter::PendingClose,
        Counter::OverdueOpen,
        Counter::OverdueClose,
    ];

    /// True for the pending counters: deltas of a stock, summed over every day up to a
    /// window's end; the others are flows, summed over the window's days.
    pub fn is_stock(self) -> bool {
        matches!(
            self,
            Counter::PendingOpen
                | Counter::PendingClose
                | Counter::OverdueOpen
                | Counter::OverdueClose
        )
    }

    /// Column name in bucket batches and checkpoints.
    pub fn column(self) -> &'static str {
        [
            "received",
            "online",
            "in_person",
            "postal",
            "finished",
            "on_time",
            "overdue",
            "finished_no_due",
            "pending_open",
            "pending_close",
            "overdue_open",
            "overdue_close",
        ][self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use dvc_pulse_model::event::ict;
    use proptest::prelude::*;

    /// The ICT day as chrono gives it: the instant in ICT, its calendar date.
    fn chrono_ict_day(t: &DateTime<FixedOffset>) -> i32 {
        day_number(t.with_timezone(&ict()).date_naive())
    }

    proptest! {
        #[test]
        fn ict_day_is_chronos_ict_calendar_day(
            secs in -8_000_000_000_000i64..8_000_000_000_000i64,
            micros in 0u32..1_000_000,
            offset_min in -(24 * 60 - 1)..(24 * 60),
        ) {
            let offset = FixedOffset::east_opt(offset_min * 60).expect("within a day");
            if let chrono::LocalResult::Single(t) = offset.timestamp_opt(secs, micros * 1000) {
                prop_assert_eq!(ict_day(&t), chrono_ict_day(&t));
            }
        }
    }

    #[test]
    fn ict_day_at_the_edges_of_a_day_and_of_chrono() {
        let ict = ict();
        let at = |y, m, d, h, min| ict.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
        for t in [
            at(2024, 6, 5, 0, 0),
            at(2024, 6, 4, 23, 59),
            at(1969, 12, 31, 23, 59),
            at(1970, 1, 1, 0, 0),
            at(1970, 1, 1, 6, 59),
        ] {
            assert_eq!(ict_day(&t), chrono_ict_day(&t), "{t}");
        }
        let day = chrono::Duration::days(1);
        for t in [
            DateTime::<chrono::Utc>::MIN_UTC + day,
            DateTime::<chrono::Utc>::MAX_UTC - day,
        ] {
            let t = t.fixed_offset();
            assert_eq!(ict_day(&t), chrono_ict_day(&t), "{t}");
        }
    }
}
