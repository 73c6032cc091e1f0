//! Reading what tools print: `dig +short` answers and Prometheus text.

/// The records of a `+short` answer, in order (comment lines skipped).
pub fn short(out: &str) -> Vec<String> {
    out.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(';')).map(String::from).collect()
}

/// The first record of a `+short` answer; panics with the whole output when there is none.
pub fn first_record(out: &str) -> String {
    short(out).into_iter().next().unwrap_or_else(|| panic!("an answer with a record, got:\n{out}"))
}

/// [`Farm::metric`] over a scraped text.
pub fn parse_metric(text: &str, line_prefix: &str) -> Option<f64> {
    let name = line_prefix.split(['{', ' ']).next().unwrap_or(line_prefix);
    let family = name.strip_suffix("_total").unwrap_or(name);
    let typed = text.lines().any(|l| l.strip_prefix("# TYPE ").is_some_and(|t| t.split(' ').next() == Some(family)));
    if !typed {
        return None;
    }
    let sample = text.lines().find(|l| l.starts_with(line_prefix));
    Some(sample.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::parse_metric;

    #[test]
    fn a_metric_needs_its_family_and_an_uncounted_label_is_zero() {
        let text = "# HELP rttp_peers_up Peers.\n# TYPE rttp_peers_up gauge\nrttp_peers_up 2\n\
                    # TYPE rttp_err_replies counter\nrttp_err_replies_total{code=\"429\"} 3\n";
        assert_eq!(parse_metric(text, "rttp_peers_up "), Some(2.0));
        assert_eq!(parse_metric(text, "rttp_err_replies_total{code=\"429\"}"), Some(3.0));
        assert_eq!(parse_metric(text, "rttp_err_replies_total{code=\"508\"}"), Some(0.0));
        assert_eq!(parse_metric(text, "rttp_peer_up "), None, "a misspelled name is not a zero");
        assert_eq!(parse_metric("", "rttp_peers_up "), None, "an empty scrape is not a zero");
    }
}
