//! PagerDuty: the routing key's format (offline: an event would page
//! someone), the REST API token and the `From` user (`GET /users?query=`).

use super::Check;
use crate::config::Config;
use crate::vendors::ProbeError;
use crate::vendors::pagerduty::{PagerDuty, check_routing_key};

const KEY: &str = "PagerDuty routing key";
const TOKEN: &str = "PagerDuty REST API token";
const FROM: &str = "PagerDuty From user";

pub(super) async fn checks(config: &Config, http: reqwest::Client) -> Vec<Check> {
    let pd = &config.pagerduty;
    let mut out = vec![match check_routing_key(pd.routing_key.expose()) {
        Ok(()) => Check::pass(
            KEY,
            "well-formed Events API v2 integration key (32 characters, a-z 0-9); not sent: an event would page someone",
        ),
        Err(why) => Check::fail(
            KEY,
            format!("the key in pagerduty.routing_key_file (or _env) is malformed: {why}"),
            "copy the Integration Key of the service's Events API v2 integration \
             (PagerDuty → Services → your service → Integrations → Events API V2) into \
             pagerduty.routing_key_file",
        ),
    }];
    let client = PagerDuty::from_config(pd, false, http);
    match client.find_user(&pd.from).await {
        Ok(found) => {
            out.push(Check::pass(
                TOKEN,
                format!("accepted by {} (GET /users)", pd.api_url),
            ));
            out.push(match found {
                Some(person) => Check::pass(
                    FROM,
                    format!(
                        "{} is the PagerDuty user {} (escalations and notes are written as them)",
                        pd.from, person.name
                    ),
                ),
                None => Check::fail(
                    FROM,
                    format!(
                        "no PagerDuty user has the e-mail {} (pagerduty.from)",
                        pd.from
                    ),
                    "set pagerduty.from to the e-mail of a PagerDuty user (People → Users): \
                     PagerDuty refuses escalations and notes without a valid From",
                ),
            });
        }
        Err(ProbeError::Rejected { reason }) => out.push(Check::fail(
            TOKEN,
            format!(
                "the REST API token in pagerduty.api_token_file (or _env) is rejected: {reason}"
            ),
            "create a new one under PagerDuty → Integrations → API Access Keys (a full-access \
             key, not read-only: pagerd escalates and writes notes) and write it to \
             pagerduty.api_token_file",
        )),
        Err(e) => out.push(Check::fail(
            TOKEN,
            format!("cannot check it: {e}"),
            format!(
                "check pagerduty.api_url ({}) and that this host reaches it (proxy, firewall)",
                pd.api_url
            ),
        )),
    }
    out
}
