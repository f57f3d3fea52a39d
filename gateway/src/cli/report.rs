//! `yiwang report double-entry`: the double-entry report of a running
//! gateway (through its admin API, as an operator granted `read` or an
//! auditor), printed as a table, CSV or the API's JSON.

use super::queue::{AdminAddr, admin_base, admin_call, typed, with_query};
use crate::report::{DoubleEntryReport, render};
use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum ReportCmd {
    /// What keying each case once saved: per item the fields each network
    /// needs against the unified case, and per period and bureau the
    /// keyings saved and the results that flowed back.
    DoubleEntry {
        #[command(flatten)]
        at: AdminAddr,
        /// Cases accepted at or after this time: RFC 3339, or a date
        /// (`2026-12-01`, midnight Beijing time).
        #[arg(long)]
        since: String,
        /// ... and before this time (RFC 3339 or a date).
        #[arg(long)]
        until: Option<String>,
        /// Only this bureau's cases (its credit code).
        #[arg(long)]
        bureau: Option<String>,
        /// How the figures are grouped.
        #[arg(long, value_enum, default_value_t = PeriodArg::Day)]
        period: PeriodArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// With `--format table`: list each network's fields one by one.
        #[arg(long)]
        fields: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum PeriodArg {
    Day,
    Month,
    Total,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Format {
    Table,
    Csv,
    Json,
}

/// `GET /admin/reports/double-entry` parameters.
#[derive(Serialize)]
struct ReportQuery {
    since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bureau: Option<String>,
    period: &'static str,
}

pub(super) fn run(cmd: ReportCmd) -> Result<ExitCode> {
    let ReportCmd::DoubleEntry {
        at,
        since,
        until,
        bureau,
        period,
        format,
        fields,
    } = cmd;
    let query = ReportQuery {
        since: time_arg("--since", &since)?,
        until: until
            .as_deref()
            .map(|u| time_arg("--until", u))
            .transpose()?,
        bureau,
        period: match period {
            PeriodArg::Day => "day",
            PeriodArg::Month => "month",
            PeriodArg::Total => "total",
        },
    };
    let base = admin_base(&at)?;
    let path = with_query("/admin/reports/double-entry", &query)?;
    let answer = admin_call(&at, &base, http::Method::GET, &path, None)?;
    let report: DoubleEntryReport = typed(answer)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => print!("{}", render::csv(&report)),
        Format::Table => {
            print!("{}", render::table(&report));
            if fields {
                print!("\n{}", render::fields(&report));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An RFC 3339 time as given, or a date as its midnight in Beijing time.
fn time_arg(flag: &str, value: &str) -> Result<String> {
    if chrono::DateTime::parse_from_rfc3339(value).is_ok() {
        return Ok(value.to_string());
    }
    let date = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").with_context(|| {
        format!("{flag} {value:?} is neither an RFC 3339 time nor a date (YYYY-MM-DD)")
    })?;
    Ok(format!("{date}T00:00:00+08:00"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_midnight_in_beijing_and_a_time_is_kept() -> Result<()> {
        assert_eq!(
            time_arg("--since", "2026-12-07")?,
            "2026-12-07T00:00:00+08:00"
        );
        assert_eq!(
            time_arg("--since", "2026-12-07T10:00:00Z")?,
            "2026-12-07T10:00:00Z"
        );
        let e = time_arg("--until", "yesterday").expect_err("not a time");
        assert!(e.to_string().contains("--until \"yesterday\""), "{e}");
        Ok(())
    }
}
