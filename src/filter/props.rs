//! Which properties a filter expression names (FES XML, CQL2 text, CQL2 JSON).

/// A filter expression the gateway cannot read; the request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the {language} expression: {message}")]
pub struct UnreadableFilter {
    pub language: &'static str,
    pub message: String,
}

/// Property names referenced by an OGC Filter Encoding (FES 1.1/2.0) XML document.
pub fn fes_properties(_xml: &str) -> Result<Vec<String>, UnreadableFilter> {
    Err(UnreadableFilter { language: "FES", message: "not supported yet".into() })
}

/// Property names referenced by a CQL2 text (or ECQL) expression.
pub fn cql2_text_properties(_text: &str) -> Result<Vec<String>, UnreadableFilter> {
    Err(UnreadableFilter { language: "CQL2 text", message: "not supported yet".into() })
}

/// Property names referenced by a CQL2 JSON expression.
pub fn cql2_json_properties(_json: &str) -> Result<Vec<String>, UnreadableFilter> {
    Err(UnreadableFilter { language: "CQL2 JSON", message: "not supported yet".into() })
}
