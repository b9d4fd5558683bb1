#!/usr/bin/env python3
"""Regenerates the locality CSVs from the MIT-licensed `vietnamadminunits` package.

    pip download --no-deps vietnamadminunits==1.0.4 && unzip -o vietnamadminunits-*.whl
    python3 schemas/reference/generate_localities.py vietnamadminunits/data

Not run by the build or the tests: the CSVs are committed, and operators may edit them.
"""
import csv
import json
import sqlite3
import sys
import unicodedata
from pathlib import Path

data = Path(sys.argv[1])
out = Path(__file__).resolve().parent
db = sqlite3.connect(data / "dataset.db")
nfc = lambda s: unicodedata.normalize("NFC", s.strip())


def write(name, header, rows):
    with open(out / name, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


# Current units (since 2025-07-01): provinces and communes.
rows, new_ward_code, new_prov_code = [], {}, {}
for code, name, key in db.execute(
    "select distinct provinceCode, province, provinceKey from admin_units order by 1"
):
    rows.append((code, nfc(name), "province", ""))
    new_prov_code[key] = code
for code, name, pcode, pkey, wkey in db.execute(
    "select wardCode, ward, provinceCode, provinceKey, wardKey from admin_units order by 1"
):
    rows.append((code, nfc(name), "commune", pcode))
    new_ward_code[(pkey, wkey)] = code
write("localities-2025.csv", ["code", "name", "level", "parent_code"], rows)

# Pre-2025 units: provinces, districts, communes.
rows, old_ward_code, old_prov_code = [], {}, {}
for code, name, key in db.execute(
    "select distinct provinceCode, province, provinceKey from admin_units_legacy order by 1"
):
    rows.append((code, nfc(name), "province", ""))
    old_prov_code[key] = code
for code, name, pcode in db.execute(
    "select distinct districtCode, district, provinceCode from admin_units_legacy order by 1"
):
    rows.append((code, nfc(name), "district", pcode))
for code, name, dcode, pkey, dkey, wkey in db.execute(
    "select wardCode, ward, districtCode, provinceKey, districtKey, wardKey "
    "from admin_units_legacy where wardCode is not null and wardCode != '' order by 1"
):
    rows.append((code, nfc(name), "commune", dcode))
    old_ward_code[f"{pkey}_{dkey}_{wkey}"] = code
write("localities-legacy.csv", ["code", "name", "level", "parent_code"], rows)

conv = json.load(open(data / "converter_2025.json", encoding="utf-8"))
prov = sorted(
    (old_prov_code[o], new_prov_code[n])
    for n, olds in conv["DICT_PROVINCE"].items()
    for o in olds
)
write("province-mapping.csv", ["legacy_code", "code"], prov)

# Each pre-2025 commune goes to one current commune; a divided one to its default part.
communes = {}
for npkey, wards in conv["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
    for nwkey, olds in wards.items():
        for o in olds:
            if o in old_ward_code and (npkey, nwkey) in new_ward_code:
                communes[old_ward_code[o]] = new_ward_code[(npkey, nwkey)]
for npkey, olds in conv["DICT_PROVINCE_WARD_DIVIDED"].items():
    for o, parts in olds.items():
        for p in parts:
            if p["isDefaultNewWard"] and o in old_ward_code and (npkey, p["newWardKey"]) in new_ward_code:
                communes[old_ward_code[o]] = new_ward_code[(npkey, p["newWardKey"])]
write("commune-mapping.csv", ["legacy_code", "code"], sorted(communes.items()))
print(f"communes mapped: {len(communes)} of {len(old_ward_code)}")
