//! The double-entry report for people (`table`, with the field-by-field
//! listing under `fields`) and for spreadsheets (`csv`: the per-period rows
//! and the total). JSON is the [`DoubleEntryReport`] itself.

use super::shape::{DoubleEntryReport, ItemFields, Keyings, Period};
use std::fmt::Write as _;

/// The column names of [`csv`], in order.
pub const CSV_COLUMNS: [&str; 13] = [
    "period",
    "bureau",
    "cases",
    "keyed_into_networks",
    "keyed_once",
    "passed_along",
    "keyings_saved",
    "ministry_case_numbers",
    "stage_changes",
    "decisions",
    "certificate_numbers",
    "results_flowed_back",
    "deliveries_not_counted",
];

fn numbers(k: &Keyings) -> [String; 11] {
    [
        k.cases.to_string(),
        k.keyed_into_networks.to_string(),
        k.keyed_once.to_string(),
        k.passed_along.to_string(),
        k.keyings_saved.to_string(),
        k.ministry_case_numbers.to_string(),
        k.stage_changes.to_string(),
        k.decisions.to_string(),
        k.certificate_numbers.to_string(),
        k.results_flowed_back.to_string(),
        k.deliveries_not_counted.to_string(),
    ]
}

/// One row per period and bureau, then `total,*`; RFC 4180 quoting.
pub fn csv(report: &DoubleEntryReport) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    let total = ("total".to_string(), "*".to_string(), &report.total);
    let rows = report
        .rows
        .iter()
        .map(|r| (r.period.clone(), r.bureau.clone(), &r.keyings))
        .chain(std::iter::once(total));
    for (period, bureau, k) in rows {
        let mut cells = vec![csv_cell(&period), csv_cell(&bureau)];
        cells.extend(numbers(k));
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A cell quoted when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The summary: per item and network the field counts, then the figures
/// per period and bureau.
pub fn table(report: &DoubleEntryReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "Double-entry report (二次采录): cases accepted since {}",
        report.since
    );
    if let Some(u) = &report.until {
        let _ = write!(out, " until {u}");
    }
    if let Some(b) = &report.bureau {
        let _ = write!(out, ", bureau {b}");
    }
    out.push_str("\n\nFields per case, by item (from the field mappings each adapter declares):\n");
    for item in &report.items {
        item_summary(&mut out, item);
    }
    let per = match report.period {
        Period::Total => "Per bureau",
        Period::Day => "Per day and bureau",
        Period::Month => "Per month and bureau",
    };
    let _ = writeln!(
        out,
        "\n{per} (cases accepted in the range; case records read: {}{}):",
        report.cases_read,
        if report.truncated {
            ", TRUNCATED: narrow the range"
        } else {
            ""
        }
    );
    let header = [
        "period",
        "bureau",
        "cases",
        "keyed",
        "once",
        "passed",
        "saved",
        "case-no",
        "stages",
        "decided",
        "certs",
        "back",
        "uncounted",
    ];
    let _ = writeln!(out, "{}", row_line(&header.map(str::to_string)));
    for r in &report.rows {
        let mut cells = vec![r.period.clone(), r.bureau.clone()];
        cells.extend(numbers(&r.keyings));
        let _ = writeln!(out, "{}", row_line(&cells));
    }
    let mut cells = vec!["total".to_string(), String::new()];
    cells.extend(numbers(&report.total));
    let _ = writeln!(out, "{}", row_line(&cells));
    let t = &report.total;
    let _ = writeln!(
        out,
        "\n{} keyings saved ({} fields keyed into networks + {} passed along − {} keyed once) and {} results flowed back instead of being re-keyed.",
        t.keyings_saved, t.keyed_into_networks, t.passed_along, t.keyed_once, t.results_flowed_back
    );
    out
}

fn row_line(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, c) in cells.iter().enumerate() {
        let _ = match i {
            0 => write!(line, "{c:<11}"),
            1 => write!(line, "{c:<20}"),
            _ => write!(line, "{c:>9} "),
        };
    }
    line.trim_end().to_string()
}

fn item_summary(out: &mut String, item: &ItemFields) {
    let _ = writeln!(
        out,
        "  {}: {} fields keyed into networks + {} passed along − {} keyed once = {} keyings saved per case",
        item.item,
        item.keyed_into_networks,
        item.passed_along,
        item.keyed_once,
        item.saved_per_case
    );
    for n in &item.networks {
        let what = match (&n.note, n.declared) {
            (Some(note), false) => note.clone(),
            _ => format!("{} fields", n.keyed),
        };
        let inputs: Vec<String> = n
            .inputs
            .iter()
            .map(|i| format!("{} ← {}", i.name, i.from))
            .collect();
        let inputs = if inputs.is_empty() {
            String::new()
        } else {
            format!("; passed along: {}", inputs.join(", "))
        };
        let _ = writeln!(out, "    {:<22} {what}{inputs}", n.network);
    }
}

/// Field by field: each network's ministry fields and the unified fields
/// they come from, then what the unified case carries once.
pub fn fields(report: &DoubleEntryReport) -> String {
    let mut out = String::new();
    for item in &report.items {
        let _ = writeln!(out, "{}", item.item);
        for n in &item.networks {
            let adapter = n.adapter.as_deref().unwrap_or("no adapter");
            let _ = writeln!(out, "  {} ({adapter})", n.network);
            if let Some(note) = &n.note {
                let _ = writeln!(out, "    {note}");
            }
            for f in &n.fields {
                let table = f
                    .code_table
                    .as_deref()
                    .map(|t| format!("  [code table {t}]"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {:<24} ← {}{table}",
                    f.ministry,
                    f.unified.join(" | ")
                );
            }
            for i in &n.inputs {
                let _ = writeln!(out, "    (input) {:<16} ← {}", i.name, i.from);
            }
        }
        let _ = writeln!(
            out,
            "  keyed once into the unified case ({}): {}",
            item.unified_fields.len(),
            item.unified_fields.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::KeyingRow;

    fn report() -> DoubleEntryReport {
        let k = Keyings {
            cases: 2,
            keyed_into_networks: 40,
            keyed_once: 15,
            passed_along: 2,
            keyings_saved: 27,
            ministry_case_numbers: 3,
            stage_changes: 9,
            decisions: 1,
            certificate_numbers: 1,
            results_flowed_back: 14,
            deliveries_not_counted: 0,
        };
        DoubleEntryReport {
            since: "2026-12-07T00:00:00+08:00".into(),
            until: None,
            bureau: None,
            period: Period::Day,
            items: Vec::new(),
            rows: vec![KeyingRow {
                period: "2026-12-07".into(),
                bureau: "B,\"1\"".into(),
                keyings: k.clone(),
            }],
            total: k,
            cases_read: 2,
            truncated: false,
        }
    }

    #[test]
    fn csv_has_a_header_a_row_per_period_and_the_total_quoted_per_rfc_4180() {
        let csv = csv(&report());
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "2026-12-07,\"B,\"\"1\"\"\",2,40,15,2,27,3,9,1,1,14,0"
        );
        assert_eq!(lines[2], "total,*,2,40,15,2,27,3,9,1,1,14,0");
        assert_eq!(lines[3], "", "ends with a line break");
    }

    #[test]
    fn the_table_ends_with_the_sentence_of_the_totals() {
        let t = table(&report());
        assert!(
            t.contains("27 keyings saved (40 fields keyed into networks + 2 passed along − 15 keyed once) and 14 results flowed back"),
            "{t}"
        );
        assert!(!t.contains("TRUNCATED"));
    }
}
