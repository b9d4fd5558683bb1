//! The one table of a window's measures. Its order is the order of every output (JSON,
//! CSV, XLSX, Parquet columns); its rules drive the window SQL of both fact sources, the
//! rolling series, the report columns and the worker's gauges. Nothing else names a
//! measure.

use crate::fact::Counter;
use serde::Serialize;
use serde::ser::SerializeMap;

/// A measure of a window row, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Measure {
    /// Received in the window.
    Total,
    /// Received online.
    Online,
    /// Received in person.
    InPerson,
    /// Received by post.
    Postal,
    /// Online over total, in percent.
    OnlineRate,
    /// Finished in the window.
    Finished,
    /// Finished on time.
    OnTime,
    /// Finished after the due date.
    Overdue,
    /// Finished without a due date.
    FinishedNoDue,
    /// Pending at the window's end.
    Pending,
    /// Pending and within the deadline (or without one).
    PendingWithin,
    /// Pending and past the deadline.
    PendingOverdue,
}

/// How a measure is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A flow: the bucket counter summed over the window's days; in the batch path, the
    /// dossiers whose latest version the counter's definition takes on those days.
    Flow(Counter),
    /// A stock at the window's end: the opening counter minus the closing one, summed
    /// over every day up to the end; in the batch path, the dossiers in that state then.
    Stock(Counter, Counter),
    /// The first measure minus the second.
    Difference(Measure, Measure),
    /// The first measure over the second, in percent; absent when the second is zero.
    Percent(Measure, Measure),
}

/// The worker's gauge a measure feeds, with its label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// `dvc_pulse_window_received_dossiers{channel=…}`.
    Received(&'static str),
    /// `dvc_pulse_window_finished_dossiers{timeliness=…}`.
    Finished(&'static str),
    /// `dvc_pulse_window_pending_dossiers{state=…}`.
    Pending(&'static str),
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct MeasureDef {
    /// The measure.
    pub measure: Measure,
    /// Column and key name in every output.
    pub name: &'static str,
    /// Vietnamese title (report headers).
    pub title_vi: &'static str,
    /// How it is computed.
    pub rule: Rule,
    /// Whether a rolling daily series carries it (flows and their rates only: a stock
    /// has no 30-day sum).
    pub in_series: bool,
    /// The gauge it feeds, if any.
    pub gauge: Option<Gauge>,
}

const fn def(
    measure: Measure,
    name: &'static str,
    title_vi: &'static str,
    rule: Rule,
    gauge: Option<Gauge>,
) -> MeasureDef {
    let in_series = matches!(rule, Rule::Flow(_) | Rule::Percent(_, _));
    MeasureDef {
        measure,
        name,
        title_vi,
        rule,
        in_series,
        gauge,
    }
}

use Counter as C;
use Measure as M;

/// Every measure, indexed by `Measure as usize`: measure, name, Vietnamese title, rule, gauge.
#[rustfmt::skip]
pub const MEASURES: [MeasureDef; 12] = [
    def(M::Total, "total", "Tổng số hồ sơ", Rule::Flow(C::Received), None),
    def(M::Online, "online", "Trực tuyến", Rule::Flow(C::Online), Some(Gauge::Received("online"))),
    def(M::InPerson, "in_person", "Trực tiếp", Rule::Flow(C::InPerson), Some(Gauge::Received("in_person"))),
    def(M::Postal, "postal", "Bưu chính", Rule::Flow(C::Postal), Some(Gauge::Received("postal"))),
    def(M::OnlineRate, "online_rate", "Tỷ lệ trực tuyến (%)", Rule::Percent(M::Online, M::Total), None),
    def(M::Finished, "finished", "Đã giải quyết", Rule::Flow(C::Finished), None),
    def(M::OnTime, "on_time", "Đúng hạn", Rule::Flow(C::OnTime), Some(Gauge::Finished("on_time"))),
    def(M::Overdue, "overdue", "Quá hạn", Rule::Flow(C::Overdue), Some(Gauge::Finished("overdue"))),
    def(M::FinishedNoDue, "finished_no_due", "Không có hạn", Rule::Flow(C::FinishedNoDue), Some(Gauge::Finished("no_due"))),
    def(M::Pending, "pending", "Đang giải quyết", Rule::Stock(C::PendingOpen, C::PendingClose), None),
    def(M::PendingWithin, "pending_within", "Đang giải quyết trong hạn", Rule::Difference(M::Pending, M::PendingOverdue), Some(Gauge::Pending("within"))),
    def(M::PendingOverdue, "pending_overdue", "Đang giải quyết quá hạn", Rule::Stock(C::OverdueOpen, C::OverdueClose), Some(Gauge::Pending("overdue"))),
];

impl Measure {
    /// Its row of [`MEASURES`].
    pub const fn def(self) -> &'static MeasureDef {
        &MEASURES[self as usize]
    }

    /// Its output name.
    pub const fn name(self) -> &'static str {
        self.def().name
    }

    /// True for the measures a query sums (flows and stocks); the others are derived.
    pub fn is_summed(self) -> bool {
        matches!(self.def().rule, Rule::Flow(_) | Rule::Stock(_, _))
    }

    /// Every measure, in output order.
    pub fn all() -> impl Iterator<Item = Measure> {
        MEASURES.iter().map(|d| d.measure)
    }

    /// The measures a query sums, in output order.
    pub fn summed() -> impl Iterator<Item = Measure> {
        Measure::all().filter(|m| m.is_summed())
    }
}

/// A value of a measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A number of dossiers.
    Count(i64),
    /// A percentage; `None` without dossiers.
    Percent(Option<f64>),
}

/// The measures of one row (or of the totals): the summed ones are kept, the derived
/// ones computed when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([i64; MEASURES.len()]);

impl Counts {
    /// A summed measure's count, or a difference; a percentage reads as 0 (see [`Counts::value`]).
    pub fn get(&self, m: Measure) -> i64 {
        match m.def().rule {
            Rule::Flow(_) | Rule::Stock(_, _) => self.0[m as usize],
            Rule::Difference(a, b) => self.get(a) - self.get(b),
            Rule::Percent(_, _) => 0,
        }
    }

    /// Sets a summed measure.
    pub fn set(&mut self, m: Measure, v: i64) {
        debug_assert!(m.is_summed(), "{m:?} is derived");
        self.0[m as usize] = v;
    }

    /// Any measure's value.
    pub fn value(&self, m: Measure) -> Value {
        match m.def().rule {
            Rule::Percent(part, whole) => {
                let (p, w) = (self.get(part), self.get(whole));
                Value::Percent((w > 0).then(|| p as f64 * 100.0 / w as f64))
            }
            _ => Value::Count(self.get(m)),
        }
    }

    /// The online rate, in percent; `None` without dossiers.
    pub fn online_rate(&self) -> Option<f64> {
        match self.value(Measure::OnlineRate) {
            Value::Percent(p) => p,
            Value::Count(_) => None,
        }
    }

    /// Adds another row's counts.
    pub fn add(&mut self, o: &Counts) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
    }

    /// Writes the measures `keep` selects into a map being serialised.
    pub fn serialize_into<S: SerializeMap>(
        &self,
        m: &mut S,
        keep: impl Fn(&MeasureDef) -> bool,
    ) -> Result<(), S::Error> {
        for d in MEASURES.iter().filter(|d| keep(d)) {
            match self.value(d.measure) {
                Value::Count(n) => m.serialize_entry(d.name, &n)?,
                Value::Percent(p) => m.serialize_entry(d.name, &p)?,
            }
        }
        Ok(())
    }
}

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(MEASURES.len()))?;
        self.serialize_into(&mut m, |_| true)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_indexed_by_the_measure() {
        for (i, d) in MEASURES.iter().enumerate() {
            assert_eq!(d.measure as usize, i, "{}", d.name);
        }
    }

    #[test]
    fn derived_measures_follow_their_rules() {
        let mut c = Counts::default();
        c.set(Measure::Total, 8);
        c.set(Measure::Online, 1);
        c.set(Measure::Pending, 5);
        c.set(Measure::PendingOverdue, 2);
        assert_eq!(c.get(Measure::PendingWithin), 3);
        assert_eq!(c.online_rate(), Some(12.5));
        assert_eq!(Counts::default().online_rate(), None);
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["pending_within"], 3);
        assert_eq!(json["online_rate"], 12.5);
    }
}
