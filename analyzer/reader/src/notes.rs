//! What opening a recording found that the user should know: warnings, and
//! among them the reasons its data are incomplete.

#[derive(Debug, Default)]
pub struct Notes {
    pub warnings: Vec<String>,
    /// Each also in `warnings`.
    pub incomplete: Vec<String>,
}

impl Notes {
    /// Worth knowing; the data are complete.
    pub fn warn(&mut self, text: String) {
        self.warnings.push(text);
    }

    /// Something is missing from the data: results are partial.
    pub fn missing(&mut self, text: String) {
        self.warnings.push(text.clone());
        self.incomplete.push(text);
    }
}
