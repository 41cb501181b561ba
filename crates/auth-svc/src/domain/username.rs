//! Usernames (RFC 8265 profiles), parsed once at the edge.

use crate::error::AuthError;

pub const MAX_USERNAME_CHARS: usize = 64;

/// A username, parsed once at the edge; code that takes `&Username` cannot skip a rule.
///
/// Rules, in order: trimmed; 1..=64 characters as received; no control characters; every
/// space-separated part valid under RFC 8265 (PRECIS IdentifierClass and bidi rule, so
/// invisible, format, bidi-override and unassigned characters are refused, not stripped); one
/// script (UTS #39). Two forms come out (see `model::username`): the display form, kept as
/// registered, and the canonical form that lookups, the unique key and throttling use.
#[derive(Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    canonical: String,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(AuthError::InvalidArgument("username must not be empty".into()));
        }
        // Before any Unicode work, so its cost is bounded by this.
        if name.chars().count() > MAX_USERNAME_CHARS {
            return Err(AuthError::InvalidArgument(format!(
                "username must be at most {MAX_USERNAME_CHARS} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(AuthError::InvalidArgument("username must not contain control characters".into()));
        }
        let forms = model::username::forms(name).map_err(|why| AuthError::InvalidArgument(why.to_string()))?;
        Ok(Self { display: forms.display, canonical: forms.canonical })
    }

    /// UsernameCasePreserved: what the account is called, as registered (`Alice`).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// UsernameCaseMapped: what names are compared by (`alice`).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

/// A `Username` reads as its canonical form wherever a plain `&str` is asked for (throttle and
/// cache keys), so `Alice` and `alice` can never be counted or cached apart.
impl std::ops::Deref for Username {
    type Target = str;

    fn deref(&self) -> &str {
        &self.canonical
    }
}

impl std::fmt::Debug for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(raw: &str) -> String {
        match Username::parse(raw) {
            Err(AuthError::InvalidArgument(message)) => message,
            other => panic!("{raw:?} gave {other:?}"),
        }
    }

    #[test]
    fn usernames_are_trimmed_and_bounded() {
        assert_eq!(Username::parse("  alice ").expect("valid").display(), "alice");
        assert_eq!(Username::parse(&"é".repeat(64)).expect("64 chars").display().chars().count(), 64);
        for bad in ["", "   ", "a\u{0}b", "tab\there", "new\nline", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        // A 100 KB name is refused by its length, before any Unicode work.
        assert_eq!(refusal(&"\u{200B}".repeat(100_000)), "username must be at most 64 characters");
    }

    #[test]
    fn case_and_width_variants_are_one_name_shown_as_typed() {
        let typed = Username::parse("Alice").expect("valid");
        assert_eq!((typed.display(), typed.canonical()), ("Alice", "alice"));
        for variant in ["alice", "ALICE", " aLiCe ", "\u{FF21}lice"] {
            assert_eq!(Username::parse(variant).expect("valid").canonical(), "alice", "{variant:?}");
        }
        assert_eq!(&*typed, "alice", "as a plain str (throttle and cache keys) it is the canonical form");
        assert_eq!(format!("{typed:?}"), "\"Alice\"");
    }

    #[test]
    fn the_lookalikes_of_issue_12_are_refused_with_a_reason() {
        let cases = [
            ("admin\u{200B}", "username must not contain U+200B"),
            ("\u{430}dmin", "username must not mix scripts (such as Latin and Cyrillic letters)"),
            ("ad\u{202E}min", "username must not contain U+202E"),
            ("admin\u{2060}", "username must not contain U+2060"),
            ("ad  min", "username must not contain two spaces in a row"),
        ];
        for (raw, message) in cases {
            assert_eq!(refusal(raw), message, "{raw:?}");
        }
        assert!(Username::parse("\u{438}\u{432}\u{430}\u{43D}").is_ok(), "Cyrillic-only names stay allowed");
        assert!(Username::parse("Jane Doe").is_ok(), "RFC 8265 joins userparts with single spaces");
    }

    #[test]
    fn same_script_lookalikes_are_refused_with_a_reason() {
        let restricted = "a letter kept out of identifiers as a lookalike or rare form";
        let cases = [
            ("\u{251}dmin", format!("username must not contain U+0251, {restricted}")),
            ("adm\u{269}n", "username must not be a lookalike of a plain ASCII name".to_owned()),
            ("\u{1D00}dmin", format!("username must not contain U+1D00, {restricted}")),
            ("pay\u{1C0}pal", format!("username must not contain U+01C0, {restricted}")),
            ("\u{261}oogle", format!("username must not contain U+0261, {restricted}")),
        ];
        for (raw, message) in cases {
            assert_eq!(refusal(raw), message, "{raw:?}");
        }
        for allowed in
            ["Jos\u{E9} P\u{E9}rez", "jane.doe_2@example.com", "x-1", "\u{5C71}\u{7530}\u{305F}\u{308D}\u{3046}"]
        {
            assert!(Username::parse(allowed).is_ok(), "{allowed:?}");
        }
    }
}
