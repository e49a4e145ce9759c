//! A request over gRPC's message limit is refused as grpc-go refuses it, since that is what etcd's
//! clients see from etcd: `ResourceExhausted`, "grpc: received message larger than max (N vs. M)".
//! tonic refuses the same request with `OutOfRange` and a text of its own, so the client listener
//! rewrites that one answer. (Under the limit but over `--max-request-bytes`, the server's own
//! check answers etcd's `etcdserver: request is too large`.)

use axum::http::HeaderValue;
use axum::response::Response;

/// tonic's text, as it leaves in the `grpc-message` header (spaces percent-encoded).
const TONIC_TOO_LARGE: &str = "Error,%20decoded%20message%20length%20too%20large:%20found%20";

const GRPC_STATUS_OUT_OF_RANGE: &str = "11";
const GRPC_STATUS_RESOURCE_EXHAUSTED: &str = "8";

/// Rewrites tonic's refusal of an oversized message to grpc-go's; leaves any other answer alone.
pub async fn as_grpc_go(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if headers.get("grpc-status").map(HeaderValue::as_bytes)
        != Some(GRPC_STATUS_OUT_OF_RANGE.as_bytes())
    {
        return response;
    }
    let Some(message) = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .and_then(grpc_go_message)
    else {
        return response;
    };
    let message = HeaderValue::from_str(&message).expect("digits, letters and %20 only");
    headers.insert(
        "grpc-status",
        HeaderValue::from_static(GRPC_STATUS_RESOURCE_EXHAUSTED),
    );
    headers.insert("grpc-message", message);
    response
}

/// "found N bytes, the limit is: M bytes" → grpc-go's "received message larger than max (N vs. M)",
/// percent-encoded as a `grpc-message` header; `None` for any other message.
fn grpc_go_message(tonic: &str) -> Option<String> {
    let rest = tonic.strip_prefix(TONIC_TOO_LARGE)?;
    let (found, rest) = rest.split_once("%20bytes,%20the%20limit%20is:%20")?;
    let limit = rest.strip_suffix("%20bytes")?;
    let number = |text: &str| text.parse::<u64>().ok();
    let (found, limit) = (number(found)?, number(limit)?);
    Some(format!(
        "grpc:%20received%20message%20larger%20than%20max%20({found}%20vs.%20{limit})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_text_becomes_grpc_gos() {
        let tonic = "Error,%20decoded%20message%20length%20too%20large:%20found%203145734%20bytes,%20the%20limit%20is:%202097152%20bytes";
        assert_eq!(
            grpc_go_message(tonic).as_deref(),
            Some("grpc:%20received%20message%20larger%20than%20max%20(3145734%20vs.%202097152)")
        );
    }

    #[test]
    fn other_out_of_range_answers_are_left_alone() {
        assert_eq!(
            grpc_go_message("etcdserver:%20mvcc:%20required%20revision%20has%20been%20compacted"),
            None
        );
        assert_eq!(
            grpc_go_message(&format!("{TONIC_TOO_LARGE}many%20bytes")),
            None
        );
    }
}
