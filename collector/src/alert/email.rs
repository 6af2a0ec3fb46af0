//! Email over SMTP (lettre): STARTTLS (default, port 587), implicit TLS (port 465) or plain
//! (port 25, for a local relay), optional authentication with the channel secret as the
//! password, and a multipart message with a text and an HTML body. The status recorded for
//! an attempt is the SMTP reply code (250 = accepted).

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::{AlertsConfig, Digest, SendResult};
use crate::store::alerts::ChannelRow;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn num(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.1}"))
        .unwrap_or_else(|| "?".into())
}

/// Subject, text body and HTML body for a digest.
pub fn render(cfg: &AlertsConfig, d: &Digest) -> (String, String, String) {
    let subject = format!("[LLMscope] {}", d.title());
    let mut text = format!("{}\n\n", d.title());
    let mut html = format!(
        "<html><body style=\"font-family:sans-serif\"><h2>{}</h2><table cellpadding=\"6\" style=\"border-collapse:collapse\">\
         <tr><th align=\"left\">Event</th><th align=\"left\">Series</th><th align=\"left\">Rule</th><th align=\"left\">Value</th><th align=\"left\">Centre / UCL / LCL</th><th></th></tr>",
        html_escape(&d.title())
    );
    for c in &d.items {
        let v = &c.violation;
        let series = format!(
            "{} / {} / {} / {} / {}",
            v["site"].as_str().unwrap_or("?"),
            v["host"].as_str().unwrap_or("?"),
            v["provider"].as_str().unwrap_or("?"),
            v["model"].as_str().unwrap_or("?"),
            v["metric"].as_str().unwrap_or("?")
        );
        let rule = v["rule"].as_i64().unwrap_or(0);
        let words = u8::try_from(rule)
            .ok()
            .and_then(llmscope_spc::Rule::from_number)
            .map(|r| r.explain(&llmscope_spc::NelsonConfig::default()))
            .unwrap_or_default();
        let last = v["points"]
            .as_array()
            .and_then(|a| a.last())
            .map(|p| num(&p["value"]))
            .unwrap_or_else(|| "?".into());
        let b = &v["baseline"];
        let limits = format!(
            "{} / {} / {}",
            num(&b["center"]),
            num(&b["ucl"]),
            num(&b["lcl"])
        );
        let link = super::link(cfg, &c.violation_id);
        text.push_str(&format!(
            "- {}: {series}\n  rule {rule}: {words}\n  value {last} (centre / UCL / LCL {limits})\n  {link}\n\n",
            c.event
        ));
        html.push_str(&format!(
            "<tr style=\"border-top:1px solid #ddd\"><td>{}</td><td>{}</td><td>{rule}: {}</td><td>{last}</td><td>{limits}</td><td><a href=\"{}\">details</a></td></tr>",
            html_escape(&c.event),
            html_escape(&series),
            html_escape(&words),
            html_escape(&link)
        ));
    }
    html.push_str("</table></body></html>");
    (subject, text, html)
}

fn transport(
    ch: &ChannelRow,
    conf: &Value,
    timeout: std::time::Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let host = conf["host"].as_str().unwrap_or("").to_owned();
    let port = conf["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(587);
    let tls_mode = conf["tls"].as_str().unwrap_or("starttls");
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .timeout(Some(timeout));
    if tls_mode != "none" {
        let mut params = TlsParameters::builder(host);
        if let Some(ca) = conf["ca_file"].as_str().filter(|s| !s.is_empty()) {
            let pem = std::fs::read(ca).map_err(|e| format!("ca_file {ca}: {e}"))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| format!("ca_file {ca}: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        let params: TlsParameters = params.build_rustls().map_err(|e| format!("tls: {e}"))?;
        b = b.tls(if tls_mode == "implicit" {
            Tls::Wrapper(params)
        } else {
            Tls::Required(params)
        });
    }
    if let Some(user) = conf["username"].as_str().filter(|s| !s.is_empty()) {
        b = b.credentials(Credentials::new(user.to_owned(), ch.secret.clone()));
    }
    Ok(b.build())
}

/// Sends one digest as one email to every recipient.
pub async fn send(cfg: &AlertsConfig, ch: &ChannelRow, d: &Digest) -> SendResult {
    let conf: Value = serde_json::from_str(&ch.config).unwrap_or(Value::Null);
    let (subject, text, html) = render(cfg, d);
    let from: Mailbox = match conf["from"].as_str().unwrap_or("").parse() {
        Ok(m) => m,
        Err(e) => return SendResult::failed(format!("`from` is not an email address: {e}")),
    };
    let mut builder = Message::builder().from(from).subject(subject);
    for t in conf["to"].as_array().into_iter().flatten() {
        match t.as_str().unwrap_or("").parse::<Mailbox>() {
            Ok(m) => builder = builder.to(m),
            Err(e) => return SendResult::failed(format!("recipient is not an email address: {e}")),
        }
    }
    let msg = match builder.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            ),
    ) {
        Ok(m) => m,
        Err(e) => return SendResult::failed(format!("building the message: {e}")),
    };
    let t = match transport(ch, &conf, cfg.timeout) {
        Ok(t) => t,
        Err(e) => return SendResult::failed(e),
    };
    match t.send(msg).await {
        Ok(r) => {
            let code = r.code().to_string().parse::<u16>().ok();
            let reply = format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" "));
            SendResult {
                status: code,
                error: (!r.is_positive()).then(|| format!("SMTP {reply}")),
                retry_after: None,
                response: reply,
            }
        }
        Err(e) => SendResult {
            status: e.status().and_then(|c| c.to_string().parse::<u16>().ok()),
            error: Some(format!("smtp: {e}")),
            retry_after: None,
            response: String::new(),
        },
    }
}
