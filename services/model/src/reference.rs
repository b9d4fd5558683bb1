//! Reference data: the essential-service catalogue, both locality unit sets and the
//! agencies table. Built into the binary from `schemas/reference/`, or loaded from
//! operator-edited copies of those CSVs.

use crate::error::ModelError;
use serde::Deserialize;
use std::borrow::Cow;
/// The reference's indexes: looked up for every record, so on a fast hash (randomly
/// seeded per process, as the standard one is).
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::path::{Path, PathBuf};

const SERVICES: &str = include_str!("../../../schemas/reference/services.csv");
const LOCALITIES_2025: &str = include_str!("../../../schemas/reference/localities-2025.csv");
const LOCALITIES_LEGACY: &str = include_str!("../../../schemas/reference/localities-legacy.csv");
const PROVINCE_MAPPING: &str = include_str!("../../../schemas/reference/province-mapping.csv");
const COMMUNE_MAPPING: &str = include_str!("../../../schemas/reference/commune-mapping.csv");
const AGENCIES: &str = include_str!("../../../schemas/reference/agencies.csv");

/// Which programme lists an essential service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Programme {
    /// Đề án 06 (Decision 06/QĐ-TTg, 2022).
    #[serde(rename = "DA06")]
    Da06,
    /// Decision 422/QĐ-TTg (2022).
    #[serde(rename = "QD422")]
    Qd422,
}

/// One essential service of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Stable id, e.g. `DA06-11`.
    pub id: String,
    /// Name exactly as the reports write it.
    pub name_vi: String,
    /// Short name for chart labels.
    pub short_name_vi: String,
    /// Agency column of the reports.
    pub agency: String,
    /// Programme.
    pub programme: Programme,
    /// National procedure codes that belong to the service.
    pub procedure_codes: Vec<String>,
    /// Connected to the national portal.
    pub connected_dvcqg: bool,
}

/// The essential-service catalogue, in report order.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    services: Vec<Service>,
    by_code: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
}

/// A procedure or service name folded for comparison: NFC, lower case, single spaces.
pub fn fold_name(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let nfc: String = name.nfc().collect::<String>().to_lowercase();
    nfc.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Catalogue {
    /// Parses `services.csv`.
    pub fn from_csv(name: &str, text: &str) -> Result<Self, ModelError> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
            name_vi: String,
            short_name_vi: String,
            agency: String,
            programme: Programme,
            procedure_codes: String,
            connected_dvcqg: bool,
        }
        let mut cat = Catalogue::default();
        for (i, row) in read_csv::<Row>(name, text)?.into_iter().enumerate() {
            let codes: Vec<String> = row
                .procedure_codes
                .split(';')
                .filter_map(|c| crate::normalize::procedure_code(c).map(Cow::into_owned))
                .collect();
            let id = crate::normalize::code(&row.id)
                .map(Cow::into_owned)
                .ok_or_else(|| bad(name, i + 2, "empty id"))?;
            for c in codes.iter().chain(std::iter::once(&id)) {
                if cat.by_code.insert(c.clone(), cat.services.len()).is_some() {
                    return Err(bad(
                        name,
                        i + 2,
                        &format!("code {c} belongs to two services"),
                    ));
                }
            }
            for n in [&row.name_vi, &row.short_name_vi] {
                let folded = fold_name(n);
                // A name two services share names neither.
                match cat.by_name.get(&folded) {
                    Some(&other) if other != cat.services.len() => {
                        cat.by_name.insert(folded, usize::MAX);
                    }
                    _ => {
                        cat.by_name.insert(folded, cat.services.len());
                    }
                }
            }
            cat.services.push(Service {
                id,
                name_vi: nfc(&row.name_vi),
                short_name_vi: nfc(&row.short_name_vi),
                agency: nfc(&row.agency),
                programme: row.programme,
                procedure_codes: codes,
                connected_dvcqg: row.connected_dvcqg,
            });
        }
        Ok(cat)
    }

    /// All services in report order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service a procedure code belongs to (by national code or by service id).
    pub fn service_for(&self, procedure_code: &str) -> Option<&Service> {
        self.by_code.get(procedure_code).map(|&i| &self.services[i])
    }

    /// The service whose name or short name is `name` (after NFC, case folding and
    /// white-space folding), for procedures whose code the catalogue does not know.
    pub fn service_named(&self, name: &str) -> Option<&Service> {
        self.by_name
            .get(&fold_name(name))
            .and_then(|&i| self.services.get(i))
    }

    /// A service by id.
    pub fn get(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }
}

/// The level of an administrative unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Tỉnh / thành phố trực thuộc trung ương.
    Province,
    /// Huyện / quận / thị xã / thành phố thuộc tỉnh (pre-2025 only).
    District,
    /// Xã / phường / thị trấn / đặc khu.
    Commune,
}

/// One administrative unit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unit {
    /// Statistics-office code.
    pub code: String,
    /// Full Vietnamese name (NFC).
    pub name: String,
    /// Level.
    pub level: Level,
    /// Parent unit's code, empty for a province.
    pub parent_code: String,
}

/// One unit set (current or pre-2025), indexed by code.
#[derive(Debug, Clone, Default)]
pub struct UnitSet {
    units: HashMap<String, Unit>,
}

impl UnitSet {
    fn from_csv(name: &str, text: &str) -> Result<Self, ModelError> {
        let mut units = HashMap::default();
        for (i, mut u) in read_csv::<Unit>(name, text)?.into_iter().enumerate() {
            u.name = nfc(&u.name);
            if let Some(prev) = units.insert(u.code.clone(), u) {
                return Err(bad(name, i + 2, &format!("duplicate code {}", prev.code)));
            }
        }
        Ok(Self { units })
    }

    /// A unit by code.
    pub fn get(&self, code: &str) -> Option<&Unit> {
        self.units.get(code)
    }

    /// The units whose parent is `parent` (`""`: the provinces), by code.
    pub fn children(&self, parent: &str) -> Vec<&Unit> {
        let mut v: Vec<&Unit> = self
            .units
            .values()
            .filter(|u| u.parent_code == parent)
            .collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    }

    /// Number of units at a level.
    pub fn count(&self, level: Level) -> usize {
        self.units.values().filter(|u| u.level == level).count()
    }

    /// Every unit whose lineage passes through `code` (the unit itself included).
    pub fn units_under<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Unit> + 'a {
        self.units
            .values()
            .filter(move |u| self.lineage(&u.code).iter().any(|a| a.code == code))
    }

    /// The unit and its ancestors, innermost first.
    pub fn lineage(&self, code: &str) -> Vec<&Unit> {
        let mut out = Vec::new();
        let mut cur = self.units.get(code);
        while let Some(u) = cur {
            out.push(u);
            cur = self.units.get(&u.parent_code);
        }
        out
    }
}

/// Both unit sets and the pre-2025 → current mappings.
#[derive(Debug, Clone, Default)]
pub struct Localities {
    /// Units in force since 2025-07-01 (provinces, communes).
    pub current: UnitSet,
    /// Units before 2025-07-01 (provinces, districts, communes).
    pub legacy: UnitSet,
    /// Pre-2025 province code → current province code.
    pub province_map: HashMap<String, String>,
    /// Pre-2025 commune code → current commune code.
    pub commune_map: HashMap<String, String>,
}

impl Localities {
    /// True when the code names a unit in either set.
    pub fn contains(&self, code: &str) -> bool {
        self.current.get(code).is_some() || self.legacy.get(code).is_some()
    }

    /// The current (post-2025) province of a unit of either set: its own lineage when
    /// the code is a current unit, else its pre-2025 province through the mapping.
    pub fn current_province(&self, code: &str) -> Option<&Unit> {
        let own = self.current.lineage(code).into_iter().last();
        own.or_else(|| {
            let legacy = self.legacy.lineage(code).into_iter().last()?;
            self.current.get(self.province_map.get(&legacy.code)?)
        })
    }

    /// Every unit a locality filter on which matches `code`: its lineage in both sets
    /// and its current province. A filter on a unit selects everything under it.
    pub fn ancestors(&self, code: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let units = self.legacy.lineage(code).into_iter();
        let units = units
            .chain(self.current.lineage(code))
            .chain(self.current_province(code));
        for u in units {
            if !out.contains(&u.code.as_str()) {
                out.push(&u.code);
            }
        }
        out
    }

    /// Every code of either set, sorted.
    pub fn codes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .current
            .units
            .keys()
            .chain(self.legacy.units.keys())
            .map(String::as_str)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The operator-edited agencies table: agency name → locality code.
#[derive(Debug, Clone, Default)]
pub struct Agencies {
    by_name: HashMap<String, String>,
}

impl Agencies {
    /// The locality of an agency, matched on its NFC, case-folded name.
    pub fn locality_of(&self, agency: &str) -> Option<&str> {
        self.by_name.get(&fold(agency)).map(String::as_str)
    }
}

/// All reference data a validator needs.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// Essential services.
    pub services: Catalogue,
    /// Localities.
    pub localities: Localities,
    /// Agencies table.
    pub agencies: Agencies,
}

/// Where operator-edited reference files live; each `None` falls back to the built-in copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferencePaths {
    /// `services.csv`.
    pub services: Option<PathBuf>,
    /// `agencies.csv`.
    pub agencies: Option<PathBuf>,
    /// A directory holding the four locality CSVs.
    pub localities_dir: Option<PathBuf>,
}

impl Reference {
    /// The reference data built into the binary.
    pub fn embedded() -> Self {
        Self::load(&ReferencePaths::default()).expect("embedded reference data is valid")
    }

    /// Loads reference data, using built-in copies where no path is given.
    pub fn load(paths: &ReferencePaths) -> Result<Self, ModelError> {
        let services = source(paths.services.as_deref(), "services.csv", SERVICES)?;
        let agencies = source(paths.agencies.as_deref(), "agencies.csv", AGENCIES)?;
        let dir = paths.localities_dir.as_deref();
        let file = |name: &str, builtin: &'static str| {
            source(dir.map(|d| d.join(name)).as_deref(), name, builtin)
        };
        let (cur, leg) = (
            file("localities-2025.csv", LOCALITIES_2025)?,
            file("localities-legacy.csv", LOCALITIES_LEGACY)?,
        );
        let (pm, cm) = (
            file("province-mapping.csv", PROVINCE_MAPPING)?,
            file("commune-mapping.csv", COMMUNE_MAPPING)?,
        );

        #[derive(Deserialize)]
        struct Map {
            legacy_code: String,
            code: String,
        }
        #[derive(Deserialize)]
        struct Agency {
            agency: String,
            locality_code: String,
        }
        let pairs =
            |(name, text): &(String, String)| -> Result<HashMap<String, String>, ModelError> {
                Ok(read_csv::<Map>(name, text)?
                    .into_iter()
                    .map(|m| (m.legacy_code, m.code))
                    .collect())
            };
        Ok(Reference {
            services: Catalogue::from_csv(&services.0, &services.1)?,
            localities: Localities {
                current: UnitSet::from_csv(&cur.0, &cur.1)?,
                legacy: UnitSet::from_csv(&leg.0, &leg.1)?,
                province_map: pairs(&pm)?,
                commune_map: pairs(&cm)?,
            },
            agencies: Agencies {
                by_name: read_csv::<Agency>(&agencies.0, &agencies.1)?
                    .into_iter()
                    .map(|a| (fold(&a.agency), a.locality_code.trim().to_string()))
                    .collect(),
            },
        })
    }
}

fn source(
    path: Option<&Path>,
    name: &str,
    builtin: &'static str,
) -> Result<(String, String), ModelError> {
    match path {
        None => Ok((format!("embedded:{name}"), builtin.to_string())),
        Some(p) => std::fs::read_to_string(p)
            .map(|t| (p.display().to_string(), t))
            .map_err(|source| ModelError::Io {
                path: p.display().to_string(),
                source,
            }),
    }
}

fn read_csv<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<Vec<T>, ModelError> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    rdr.deserialize()
        .map(|r| {
            r.map_err(|e| ModelError::Reference {
                path: name.to_string(),
                line: e.position().map(|p| p.line()).unwrap_or(0),
                message: e.to_string(),
            })
        })
        .collect()
}

fn bad(name: &str, line: usize, message: &str) -> ModelError {
    ModelError::Reference {
        path: name.to_string(),
        line: line as u64,
        message: message.to_string(),
    }
}

fn nfc(s: &str) -> String {
    crate::normalize::text(s)
        .map(Cow::into_owned)
        .unwrap_or_default()
}

fn fold(s: &str) -> String {
    nfc(s).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_counts_match_the_statistics_office() {
        let r = Reference::embedded();
        let l = &r.localities;
        assert_eq!(l.current.count(Level::Province), 34);
        assert_eq!(l.current.count(Level::Commune), 3321);
        assert_eq!(l.current.count(Level::District), 0);
        assert_eq!(l.legacy.count(Level::Province), 63);
        assert_eq!(l.legacy.count(Level::District), 696);
        assert_eq!(l.legacy.count(Level::Commune), 10035);
        assert_eq!(l.province_map.len(), 63);
        assert_eq!(l.commune_map.len(), 10035);
        // Every mapping lands on a current unit.
        assert!(l.province_map.values().all(|c| l.current.get(c).is_some()));
        assert!(l.commune_map.values().all(|c| l.current.get(c).is_some()));
    }

    #[test]
    fn phan_rang_is_district_582_of_ninh_thuan() {
        let r = Reference::embedded();
        let lineage: Vec<_> = r
            .localities
            .legacy
            .lineage("22738")
            .iter()
            .map(|u| u.code.as_str())
            .collect();
        assert_eq!(lineage, ["22738", "582", "58"]);
        assert_eq!(r.localities.province_map["58"], "56");
        assert_eq!(
            r.localities.current.get("79").unwrap().name,
            "Thành phố Hồ Chí Minh"
        );
    }

    #[test]
    fn catalogue_maps_codes_and_ids() {
        let r = Reference::embedded();
        let s = r.services.service_for("1.001193").unwrap();
        assert_eq!(s.name_vi, "Đăng ký khai sinh");
        assert_eq!(
            r.services.service_for("DA06-02").unwrap().name_vi,
            "Cấp lại, đổi thẻ căn cước công dân"
        );
        assert!(r.services.service_for("9.999999").is_none());
        assert!(
            r.services
                .services()
                .iter()
                .all(|s| !s.name_vi.is_empty() && !s.short_name_vi.is_empty())
        );
    }

    #[test]
    fn agencies_match_whatever_the_normal_form() {
        let r = Reference::embedded();
        let nfd = "UBND phu\u{31b}o\u{31b}\u{300}ng \u{110}o\u{302} Vinh";
        assert_eq!(r.agencies.locality_of(nfd), Some("22738"));
        assert_eq!(r.agencies.locality_of("ubnd PHƯỜNG đô vinh"), Some("22738"));
    }

    #[test]
    fn an_operator_copy_replaces_the_builtin_one() {
        let dir = std::env::temp_dir().join(format!("dvc-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("services.csv");
        std::fs::write(&p, "id,name_vi,short_name_vi,agency,programme,procedure_codes,connected_dvcqg\nX-1,Thử,Thử,Công an,QD422,1.000001;2000002,false\n").unwrap();
        let r = Reference::load(&ReferencePaths {
            services: Some(p),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.services.services().len(), 1);
        assert_eq!(r.services.service_for("2.000002").unwrap().id, "X-1");
        let err = Reference::load(&ReferencePaths {
            services: Some(dir.join("missing.csv")),
            ..Default::default()
        });
        assert!(matches!(err, Err(ModelError::Io { .. })));
    }
}
