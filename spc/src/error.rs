use thiserror::Error;

/// Everything that can go wrong in the SPC math. Messages are lowercase and say what to fix.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SpcError {
    /// A baseline needs at least two points (one moving range).
    #[error("a baseline needs at least {needed} points, got {got}")]
    TooFewPoints {
        /// Minimum number of points.
        needed: usize,
        /// Points supplied.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("value at index {index} is not finite ({value})")]
    NonFiniteValue {
        /// 0-based position of the value.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The log transform needs strictly positive values.
    #[error("value at index {index} is {value}, but the log transform needs values > 0")]
    NonPositiveForLog {
        /// 0-based position of the value.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// Sigma came out as zero (all points equal, or all moving ranges zero).
    #[error("sigma is zero: the baseline points do not vary, so no limits can be drawn")]
    ZeroSigma,
    /// Sigma is negative, NaN or infinite.
    #[error("sigma must be a finite number > 0, got {0}")]
    InvalidSigma(f64),
    /// The centre line is NaN or infinite.
    #[error("center must be a finite number, got {0}")]
    InvalidCenter(f64),
    /// A rule or chart parameter is out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Parameter name as the user writes it, e.g. `rule5.window`.
        name: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

impl SpcError {
    pub(crate) fn param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        SpcError::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
