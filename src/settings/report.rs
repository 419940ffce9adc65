//! What the walk of a configuration finds: problems, warnings, and the secrets read, each with its position.

use std::fmt;

use super::{Secret, Span};

/// One thing wrong with a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The key it is about, as a path from the top of the file (`bridge[2].room[0].direction`), or from the top
    /// of a provisioned bridge (`room[0].direction`); none where a problem is about the whole file.
    pub field: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// All problems of one file, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Collects problems while the tree is walked.
pub(crate) struct Report<'s> {
    source: &'s str,
    file: &'s str,
    problems: Vec<(usize, Problem)>,
    /// What is allowed but probably not meant: said by `check`, which still accepts the file.
    warnings: Vec<(usize, Problem)>,
    /// Every secret read, with where it was written: two accounts with the same one are found after the walk.
    pub secrets: Vec<(Span, String, Secret)>,
    /// Secrets written into the file itself (no `env:`, `file:`, `cred:`), and their keys.
    literals: Vec<(Span, &'static str)>,
    /// Parts of the source that are not the file: where each starts, and what problems in it are said to be in
    /// (the bridges provisioned in the store, appended after the file's text).
    segments: Vec<(usize, String)>,
}

impl<'s> Report<'s> {
    pub fn new(source: &'s str, file: &'s str) -> Self {
        let (problems, warnings, secrets, literals) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        Self { source, file, problems, warnings, secrets, literals, segments: Vec::new() }
    }

    /// From `start` on, the source is another document: problems there name `label` and count lines from it.
    pub fn segment(&mut self, start: usize, label: String) {
        self.segments.push((start, label));
    }

    /// The document an offset is in: where it starts, its name, and whether it is a segment.
    fn document(&self, offset: usize) -> (usize, &str, bool) {
        match self.segments.iter().rev().find(|(start, _)| *start <= offset) {
            Some((start, label)) => (*start, label, true),
            None => (0, self.file, false),
        }
    }

    fn at(&self, span: &Span, message: String) -> (usize, Problem) {
        let offset = span.start.min(self.source.len());
        let (start, file, _) = self.document(offset);
        let before = self.source.get(start..offset).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (offset, Problem { file: file.to_owned(), line, column, message, field: None })
    }

    /// Names the key of every problem and warning so far, from the parsed tree (`field`). In a segment the path
    /// starts inside its one bridge.
    pub fn locate(&mut self, root: &toml::de::DeTable<'_>) {
        let mut found: Vec<(usize, Option<String>)> = Vec::new();
        for (offset, _) in self.problems.iter().chain(&self.warnings) {
            let mut path = super::field_at(root, *offset);
            if self.document(*offset).2 {
                path = path.and_then(|p| p.split_once('.').map(|(_, inner)| inner.to_owned()));
            }
            found.push((*offset, path));
        }
        let mut found = found.into_iter();
        for (_, problem) in self.problems.iter_mut().chain(self.warnings.iter_mut()) {
            problem.field = found.next().and_then(|(_, path)| path);
        }
    }

    pub fn error(&mut self, span: &Span, message: impl Into<String>) {
        let problem = self.at(span, message.into());
        self.problems.push(problem);
    }

    /// Something allowed but probably not meant: the file is accepted, and `check` says it with its position.
    pub fn warn(&mut self, span: &Span, message: impl Into<String>) {
        let warning = self.at(span, message.into());
        self.warnings.push(warning);
    }

    /// Remembers a secret `spec` written as the value itself, not a reference.
    pub fn note_literal(&mut self, span: &Span, key: &'static str, spec: &str) {
        if !["env:", "file:", "cred:"].iter().any(|source| spec.starts_with(source)) {
            self.literals.push((span.clone(), key));
        }
    }

    /// Where the file holds a secret's value itself, for the warning about a file others can read.
    pub fn literal_secrets(&self) -> Vec<Problem> {
        let message = |key| format!("secret `{key}` is written in the file, which others can read");
        self.literals.iter().map(|(span, key)| self.at(span, message(key)).1).collect()
    }

    pub fn finish(self) -> Result<(), Problems> {
        self.finish_with_warnings().map(drop)
    }

    /// Every problem, or (when there is none) the warnings, each in file order.
    pub fn finish_with_warnings(mut self) -> Result<Vec<Problem>, Problems> {
        if self.problems.is_empty() {
            self.warnings.sort_by_key(|(offset, _)| *offset);
            return Ok(self.warnings.into_iter().map(|(_, p)| p).collect());
        }
        self.problems.sort_by_key(|(offset, _)| *offset);
        Err(Problems(self.problems.into_iter().map(|(_, p)| p).collect()))
    }
}
