//! Raw → runtime conversion with operator-facing errors.
use std::path::Path;

use super::Config;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration")]
pub struct ConfigErrors(pub Vec<ConfigError>);

pub fn parse(_text: &str, _base: &Path) -> Result<Config, ConfigErrors> {
    todo!()
}

pub fn load(_path: &Path) -> Result<Config, ConfigErrors> {
    todo!()
}
