//! Email over SMTP (lettre): STARTTLS (default, port 587), implicit TLS (port 465) or plain
//! (port 25, for a local relay), optional authentication with the channel secret as the
//! password, and a multipart message with a text and an HTML body. The status recorded for
//! an attempt is the SMTP reply code (250 = accepted).

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use llmscope_store::alerts::ChannelRow;
use serde_json::{Value, json};

use super::{Channel, SendContext, min_interval_ms, text};
use crate::config::AlertsConfig;
use crate::digest::{Digest, finding, members_text, num, series_text};
use crate::transport::SendResult;

/// Email over SMTP.
pub struct Email;

impl Channel for Email {
    fn validate(&self, config: &Value, has_secret: bool) -> Result<Value, String> {
        validate(config, has_secret)
    }

    async fn send(&self, ctx: SendContext<'_>, ch: &ChannelRow, d: &Digest) -> SendResult {
        send(ctx.cfg, ch, d).await
    }
}

fn validate(config: &Value, has_secret: bool) -> Result<Value, String> {
    let s = |k: &str| text(config, k);
    let min_interval_ms = min_interval_ms(config)?;

    let host = s("host");
    if host.is_empty() {
        return Err("`host` (the SMTP server) is required".into());
    }
    let tls = match s("tls").as_str() {
        "" | "starttls" => "starttls",
        "implicit" => "implicit",
        "none" => "none",
        other => {
            return Err(format!(
                "`tls` must be starttls, implicit or none; got `{other}`"
            ));
        }
    };
    let port = match config.get("port") {
        None | Some(Value::Null) => match tls {
            "implicit" => 465,
            "none" => 25,
            _ => 587,
        },
        Some(v) => v
            .as_u64()
            .filter(|p| (1..=65535).contains(p))
            .ok_or("`port` must be a number from 1 to 65535")?,
    };
    let from = s("from");
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(format!("`from` `{from}` is not an email address"));
    }
    let to: Vec<String> = match config.get("to") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().unwrap_or("").trim().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    if to.is_empty() {
        return Err("`to` must list at least one recipient".into());
    }
    for (i, t) in to.iter().enumerate() {
        if t.parse::<lettre::message::Mailbox>().is_err() {
            return Err(format!("`to[{i}]` `{t}` is not an email address"));
        }
    }
    let username = s("username");
    if !username.is_empty() && !has_secret {
        return Err("`username` is set but there is no password (the secret)".into());
    }
    let ca_file = s("ca_file");
    if !ca_file.is_empty() {
        std::fs::read(&ca_file).map_err(|e| format!("`ca_file` {ca_file} cannot be read: {e}"))?;
    }
    Ok(
        json!({"host": host, "port": port, "tls": tls, "username": username,
        "from": from, "to": to, "ca_file": ca_file, "min_interval_ms": min_interval_ms}),
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Subject, text body and HTML body for a digest.
pub fn render(cfg: &AlertsConfig, d: &Digest) -> (String, String, String) {
    let subject = format!("[LLMscope] {}", d.title());
    let mut text = format!("{}\n\n", d.title());
    let mut html = format!(
        "<html><body style=\"font-family:sans-serif\"><h2>{}</h2><table cellpadding=\"6\" style=\"border-collapse:collapse\">\
         <tr><th align=\"left\">Event</th><th align=\"left\">Series</th><th align=\"left\">Detector</th><th align=\"left\">Value</th><th align=\"left\">Centre / UCL / LCL</th><th></th></tr>",
        html_escape(&d.title())
    );
    for c in &d.items {
        let v = c.violation.as_ref();
        let series = series_text(v, true);
        let (rule, words) = finding(v);
        let last = num(v.and_then(|v| v.last_value()));
        let b = v.map(|v| &v.baseline);
        let limits = format!(
            "{} / {} / {}",
            num(b.map(|b| b.center_original())),
            num(b.map(|b| b.ucl())),
            num(b.map(|b| b.lcl()))
        );
        let link = cfg.link(&c.violation_id);
        let members = members_text(c);
        let also: String = members.iter().map(|m| format!("  also: {m}\n")).collect();
        text.push_str(&format!(
            "- {}: {series}\n  {rule}: {words}\n  value {last} (centre / UCL / LCL {limits})\n{also}  {link}\n\n",
            c.event
        ));
        html.push_str(&format!(
            "<tr style=\"border-top:1px solid #ddd\"><td>{}</td><td>{}</td><td>{rule}: {}</td><td>{last}</td><td>{limits}</td><td><a href=\"{}\">details</a></td></tr>",
            html_escape(c.event.as_str()),
            html_escape(&series),
            html_escape(&words),
            html_escape(&link)
        ));
        for m in &members {
            html.push_str(&format!(
                "<tr><td></td><td colspan=\"5\" style=\"color:#555\">also in this incident: {}</td></tr>",
                html_escape(m)
            ));
        }
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
async fn send(cfg: &AlertsConfig, ch: &ChannelRow, d: &Digest) -> SendResult {
    let conf: Value = serde_json::from_str(&ch.config).unwrap_or(Value::Null);
    if cfg.deny_private_targets {
        let host = conf["host"].as_str().unwrap_or("");
        if let Err(e) = crate::targets::check_url(&format!("smtp://{host}:25")).await {
            return SendResult::failed(e);
        }
    }
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
