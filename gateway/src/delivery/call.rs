//! One job through a network's adapter: a submit, the verify query that
//! settles an ambiguous submit (`query-status` with `idem:<key>`), or a
//! bureau change; the call's failure classified as an [`Outcome`]. Every
//! adapter call (these, polls and callbacks) ends in [`Delivery::after_call`]:
//! the audit trail, and the network's alert on a refused TLS peer.

use super::outcome::{Failure, FailureKind, Outcome};
use super::{Delivery, NetworkRuntime};
use crate::runtime::{CallError, CallReport, ErrorClass, LoadedAdapter, Submission};
use crate::store::{CaseRecord, Destination, Job, JobKind};
use std::time::Instant;
use yiwang_audit::{Entry, Kind};

/// Call the network's adapter for one job; the outcome and the adapter
/// version (sha256) that ran.
pub(crate) async fn network(
    delivery: &Delivery,
    net: &NetworkRuntime,
    record: &CaseRecord,
    job: &Job,
    verifying: bool,
) -> (Outcome, Option<String>) {
    let adapter = match delivery.adapter_for(net, job.adapter.as_deref()).await {
        Ok(a) => a,
        Err(e) => {
            let outcome = Outcome::permanent(FailureKind::AdapterVersionMissing, e.to_string());
            return (outcome, job.adapter.clone());
        }
    };
    let timer = Instant::now();
    let (outcome, call) = match (&job.kind, verifying) {
        (JobKind::Submit { .. }, true) => (
            verify(delivery, net, &adapter, record, job).await,
            "query_status",
        ),
        (JobKind::Submit { .. }, false) => {
            (submit(delivery, net, &adapter, record, job).await, "submit")
        }
        (JobKind::Change { change_json }, _) => (
            change(delivery, net, &adapter, record, job, change_json).await,
            "update",
        ),
        (JobKind::Notify { .. }, _) => (
            Outcome::permanent(FailureKind::Misrouted, "a notice was queued for a network"),
            "none",
        ),
    };
    metrics::histogram!("yiwang_adapter_call_seconds", "network" => net.name.clone(), "call" => call)
        .record(timer.elapsed().as_secs_f64());
    if let Outcome::Failed(f) = &outcome
        && !f.kind.is_adapter_error()
    {
        metrics::counter!("yiwang_adapter_failures_total", "network" => net.name.clone(), "kind" => f.kind.to_string())
            .increment(1);
    }
    (outcome, Some(adapter.digest().to_string()))
}

/// Ask the ministry whether an earlier, ambiguous submit created the case.
async fn verify(
    delivery: &Delivery,
    net: &NetworkRuntime,
    adapter: &LoadedAdapter,
    record: &CaseRecord,
    job: &Job,
) -> Outcome {
    let case = record.case_number.as_str();
    let reference = format!("idem:{}", job.idempotency_key);
    let report = adapter.query_status(Some(case), &reference).await;
    delivery.after_call(
        &net.name,
        "query-status",
        Some(case),
        adapter.digest(),
        &report,
    );
    let class = report.error_class();
    match report.result {
        Ok(events) if events.is_empty() => Outcome::NotFound,
        Ok(events) => Outcome::Delivered {
            network_case_number: events.first().map(|e| e.network_case_number.clone()),
            events,
        },
        Err(e) => failed(&e, class, true, report.trace.peer_rejected.as_deref()),
    }
}

async fn submit(
    delivery: &Delivery,
    net: &NetworkRuntime,
    adapter: &LoadedAdapter,
    record: &CaseRecord,
    job: &Job,
) -> Outcome {
    let case = record.case_number.as_str();
    let submission = Submission {
        case_json: record.case_json.clone(),
        idempotency_key: job.idempotency_key.clone(),
        inputs: record.inputs_for(job),
    };
    let report = adapter.submit(case, submission).await;
    delivery.after_call(&net.name, "submit", Some(case), adapter.digest(), &report);
    let class = report.error_class();
    match report.result {
        Ok(receipt) => Outcome::Delivered {
            network_case_number: Some(receipt.network_case_number),
            events: receipt.events,
        },
        Err(e) => failed(&e, class, false, report.trace.peer_rejected.as_deref()),
    }
}

/// A bureau change, addressed by the ministry's case number.
async fn change(
    delivery: &Delivery,
    net: &NetworkRuntime,
    adapter: &LoadedAdapter,
    record: &CaseRecord,
    job: &Job,
    change_json: &str,
) -> Outcome {
    let case = record.case_number.as_str();
    let number = record
        .networks
        .get(&net.name)
        .and_then(|n| n.network_case_number.clone());
    let Some(number) = number else {
        return Outcome::permanent(
            FailureKind::NoNetworkCaseNumber,
            format!(
                "network `{}` never returned a case number for {case}; the change cannot be addressed",
                net.name
            ),
        );
    };
    let change = crate::runtime::CaseChange {
        network_case_number: number.clone(),
        change_json: change_json.to_string(),
        idempotency_key: job.idempotency_key.clone(),
    };
    let report = adapter.update(case, change).await;
    delivery.after_call(&net.name, "update", Some(case), adapter.digest(), &report);
    let class = report.error_class();
    match report.result {
        Ok(events) => Outcome::Delivered {
            network_case_number: Some(number),
            events,
        },
        // A change carries its idempotency key: resending after a lost
        // reply is safe, so ambiguous = retry.
        Err(e) => match failed(&e, class, false, report.trace.peer_rejected.as_deref()) {
            Outcome::Failed(f) if f.class == ErrorClass::Ambiguous => Outcome::Failed(Failure {
                class: ErrorClass::Retryable,
                ..f
            }),
            other => other,
        },
    }
}

/// A failed call as an outcome. A TLS peer refusal (the ministry's
/// certificate failed verification or its pin, or it refused ours) is its
/// own kind: it raises the network's alert and holds its queue.
fn failed(
    e: &CallError,
    class: Option<ErrorClass>,
    verifying: bool,
    peer_rejected: Option<&str>,
) -> Outcome {
    if let Some(reason) = peer_rejected {
        return Outcome::Failed(Failure {
            class: ErrorClass::Retryable,
            kind: FailureKind::PeerRejected,
            message: format!("TLS peer refused: {reason}"),
            retry_after_ms: None,
        });
    }
    let retry_after_ms = match e {
        CallError::Adapter(crate::runtime::AdapterError::Retryable(r)) => r.retry_after_ms,
        _ => None,
    };
    let mut class = class.unwrap_or(ErrorClass::Retryable);
    // A failed verify query sent nothing that could create a case: it is
    // asked again later, whatever the class says about its own request.
    if verifying && class == ErrorClass::Ambiguous {
        class = ErrorClass::Retryable;
    }
    Outcome::Failed(Failure {
        class,
        kind: FailureKind::Call(e.kind()),
        message: e.to_string(),
        retry_after_ms,
    })
}

impl Delivery {
    /// What follows every adapter call: the call goes to the audit trail,
    /// and each request it sent to its network with the reply (method,
    /// endpoint, status, sizes, sha256 of both bodies; the bodies themselves
    /// only when the trail keeps bodies, then encrypted); a TLS peer refusal
    /// on the way puts the network in alert.
    pub(crate) fn after_call<T>(
        &self,
        network: &str,
        call: &str,
        case: Option<&str>,
        adapter: &str,
        report: &CallReport<T>,
    ) {
        let (outcome, error, problems) = match &report.result {
            Ok(_) => ("ok", None, Vec::new()),
            Err(e) => (e.kind(), Some(e.to_string()), e.problems()),
        };
        let trace = &report.trace;
        self.audit.record(
            Entry::new(Kind::AdapterCall)
                .about(case, Some(network))
                .detail(serde_json::json!({
                    "call": call,
                    "adapter": adapter,
                    "outcome": outcome,
                    "error": error,
                    "problems": problems,
                    "elapsed_ms": report.elapsed.as_millis() as u64,
                    "requests": trace.exchanges.len(),
                    "violations": trace.violations.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>(),
                })),
        );
        for x in &trace.exchanges {
            let mut entry = Entry::new(Kind::Outbound)
                .about(case, Some(network))
                .detail(serde_json::to_value(x).unwrap_or_default());
            if let Some((request, response)) = &x.bodies {
                entry = entry
                    .body("request", request.to_vec())
                    .body("response", response.to_vec());
            }
            self.audit.record(entry);
        }
        if let Some(reason) = &trace.peer_rejected {
            let destination = Destination::Network(network.to_string());
            self.alerts
                .raise(&destination, &format!("TLS peer refused: {reason}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{AdapterError, RetryableError};

    fn retryable(after: Option<u64>) -> CallError {
        CallError::Adapter(AdapterError::Retryable(RetryableError {
            message: "busy".into(),
            retry_after_ms: after,
        }))
    }

    #[test]
    fn a_refused_peer_is_its_own_kind_whatever_the_error() {
        let Outcome::Failed(f) = failed(
            &retryable(None),
            Some(ErrorClass::Permanent),
            false,
            Some("bad cert"),
        ) else {
            panic!("a failure")
        };
        assert_eq!(f.kind, FailureKind::PeerRejected);
        assert_eq!(f.class, ErrorClass::Retryable);
        assert!(f.message.contains("bad cert"));
    }

    #[test]
    fn retry_after_is_carried_and_a_failed_verify_is_asked_again() {
        let Outcome::Failed(f) = failed(
            &retryable(Some(7000)),
            Some(ErrorClass::Retryable),
            false,
            None,
        ) else {
            panic!("a failure")
        };
        assert_eq!(f.retry_after_ms, Some(7000));
        assert_eq!(f.kind, FailureKind::Call("adapter_retryable"));
        let trap = CallError::Trap("boom".into());
        let Outcome::Failed(f) = failed(&trap, Some(ErrorClass::Ambiguous), true, None) else {
            panic!("a failure")
        };
        assert_eq!(f.class, ErrorClass::Retryable);
        let Outcome::Failed(f) = failed(&trap, Some(ErrorClass::Ambiguous), false, None) else {
            panic!("a failure")
        };
        assert_eq!(f.class, ErrorClass::Ambiguous);
        assert_eq!(f.kind, FailureKind::Call("trap"));
    }
}
