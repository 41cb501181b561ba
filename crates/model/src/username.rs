//! What a username is, in Unicode terms: RFC 8265 (PRECIS) forms, UTS #39's mixed-script rule
//! and its General Security Profile.
//!
//! It lives in the storage crate because the comparison key is derived on every insert and
//! lookup, and by a migration for rows written before it existed: one function, so they can
//! never disagree. Trimming, length and the error a client sees are auth-svc's `policy`.
//!
//! RFC 8265 §3.1 defines a username as userparts joined by single spaces; each userpart is
//! enforced on its own, so `Jane Doe` is a username and `Jane  Doe` is not.

use precis_profiles::{
    UsernameCaseMapped, UsernameCasePreserved,
    precis_core::{Error as PrecisError, UnexpectedError, profile::PrecisFastInvocation},
};
use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript, RestrictionLevel, RestrictionLevelDetection, skeleton};

/// Why a name is not a username; the text is what a client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("username must not contain two spaces in a row")]
    EmptyUserpart,
    /// A code point PRECIS's IdentifierClass disallows: control, format (zero-width, bidi
    /// overrides), symbols, compatibility forms, or unassigned in the PRECIS tables.
    #[error("username must not contain U+{0:04X}")]
    Disallowed(u32),
    #[error("username breaks the bidi rule of RFC 8265 (right-to-left text must be a right-to-left word)")]
    Bidi,
    #[error("username must not mix scripts (such as Latin and Cyrillic letters)")]
    MixedScripts,
    /// A letter UTS #39 keeps out of identifiers (technical, obsolete or phonetic forms such
    /// as `ɑ` U+0251 or `ᴀ` U+1D00): mostly lookalikes of common letters of the same script.
    #[error("username must not contain U+{0:04X}, a letter kept out of identifiers as a lookalike or rare form")]
    Restricted(u32),
    /// Non-ASCII letters that UTS #39 confusables map, every one, onto ASCII (`admɩn` with
    /// U+0269, a letter the profile allows for African languages).
    #[error("username must not be a lookalike of a plain ASCII name")]
    AsciiLookalike,
}

/// The two forms of a valid username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameForms {
    /// UsernameCasePreserved (width-mapped, NFC): what the user sees, as registered.
    pub display: String,
    /// UsernameCaseMapped (also lowercased): what names are compared and unique by.
    pub canonical: String,
}

/// Both forms of `name`, if it is a username: every userpart valid under RFC 8265, the whole
/// in one script, or Latin with Han/Japanese/Korean (UTS #39 "highly restrictive"), and every
/// non-ASCII character allowed in identifiers by UTS #39's General Security Profile, and not a
/// lookalike of an ASCII name (UTS #39 skeleton).
pub fn forms(name: &str) -> Result<UsernameForms, UsernameError> {
    let display = per_userpart(name, UsernameCasePreserved::enforce)?;
    if !display.as_str().is_single_script()
        && !display.as_str().check_restriction_level(RestrictionLevel::HighlyRestrictive)
    {
        return Err(UsernameError::MixedScripts);
    }
    // Same-script lookalikes (`ɑdmin`, `payǀpal`) pass the script rule; the profile refuses
    // them. ASCII is left to PRECIS: the profile also restricts `@` and `+`, which are not
    // lookalikes and which email-like names need.
    if let Some(restricted) = display.chars().find(|&c| !c.is_ascii() && !c.identifier_allowed()) {
        return Err(UsernameError::Restricted(u32::from(restricted)));
    }
    // The profile allows a few lookalikes (`ɩ`, Cyrillic `р`): a name that UTS #39's skeleton
    // turns into plain ASCII reads as an ASCII name someone else may hold.
    if !display.is_ascii() && skeleton(&display).all(|c| c.is_ascii()) {
        return Err(UsernameError::AsciiLookalike);
    }
    let canonical = canonical(&display)?;
    Ok(UsernameForms { display, canonical })
}

/// The PRECIS UsernameCaseMapped form of `name` (RFC 8265 §3.3: width mapping, lowercase,
/// NFC, then the IdentifierClass and bidi rules), or why PRECIS refuses it.
pub fn canonical(name: &str) -> Result<String, UsernameError> {
    per_userpart(name, UsernameCaseMapped::enforce)
}

/// The value of `users.username_canonical` for `name`.
///
/// Names the service accepts are PRECIS-valid, so this is [`canonical`]. Rows written before
/// the rule may hold names PRECIS refuses (`admin` + U+200B); they keep their account under
/// their lowercased NFC text instead (a login cannot name them, as Login parses names by the
/// same rules; see the migration). The unique index decides any collision.
pub fn storage_key(name: &str) -> String {
    canonical(name).unwrap_or_else(|_| name.to_lowercase().nfc().collect())
}

fn per_userpart<'a>(
    name: &'a str,
    enforce: impl Fn(&'a str) -> Result<std::borrow::Cow<'a, str>, PrecisError>,
) -> Result<String, UsernameError> {
    let mut parts = Vec::new();
    for userpart in name.split(' ') {
        if userpart.is_empty() {
            return Err(UsernameError::EmptyUserpart);
        }
        parts.push(enforce(userpart).map_err(|err| explain(userpart, err))?);
    }
    Ok(parts.join(" "))
}

fn explain(userpart: &str, err: PrecisError) -> UsernameError {
    match err {
        PrecisError::BadCodepoint(info)
        | PrecisError::Unexpected(
            UnexpectedError::ContextRuleNotApplicable(info) | UnexpectedError::MissingContextRule(info),
        ) => UsernameError::Disallowed(info.cp),
        // Width mapping never empties a userpart, so `Invalid` is the bidi rule; anything else
        // names the first character that is not plain ASCII, the likeliest culprit.
        PrecisError::Invalid => UsernameError::Bidi,
        PrecisError::Unexpected(_) => {
            UsernameError::Disallowed(userpart.chars().find(|c| !c.is_ascii()).map_or(0, u32::from))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_width_variants_share_one_key() {
        for variant in ["alice", "Alice", "ALICE", "\u{FF21}lice"] {
            assert_eq!(storage_key(variant), "alice", "{variant:?}");
        }
        // NFC: e + combining acute is é; accents are not stripped.
        assert_eq!(storage_key("Jose\u{301}"), "jos\u{e9}");
        assert_ne!(storage_key("alic\u{e9}"), storage_key("alice"));
        assert_eq!(storage_key("\u{418}\u{432}\u{430}\u{43D}"), "\u{438}\u{432}\u{430}\u{43D}", "Иван");
        assert_eq!(storage_key("Jane Doe"), "jane doe");
    }

    #[test]
    fn the_display_form_keeps_case_and_maps_width() {
        let forms = forms("\u{FF2A}ane Doe").expect("valid");
        assert_eq!((forms.display.as_str(), forms.canonical.as_str()), ("Jane Doe", "jane doe"));
    }

    #[test]
    fn the_key_of_a_key_is_itself() {
        for name in ["Alice", "\u{130}stanbul", "Stra\u{DF}e", "\u{FF21}BC", "\u{3A3}\u{3A9}\u{3A3}", "A b"] {
            let key = storage_key(name);
            assert_eq!(storage_key(&key), key, "{name:?}");
        }
    }

    #[test]
    fn precis_refuses_invisible_format_and_bidi_control_characters() {
        let cases = [
            ("admin\u{200B}", UsernameError::Disallowed(0x200B)),
            ("admin\u{2060}", UsernameError::Disallowed(0x2060)),
            ("ad\u{202E}min", UsernameError::Disallowed(0x202E)),
            ("a\u{0}b", UsernameError::Disallowed(0)),
            ("\u{1F600}", UsernameError::Disallowed(0x1F600)),
            ("a\u{3000}b", UsernameError::Disallowed(0x20)),
            ("ad  min", UsernameError::EmptyUserpart),
            ("", UsernameError::EmptyUserpart),
            // Hebrew letters then a Latin one: the bidi rule refuses the mixture.
            ("\u{5D0}\u{5D1}a", UsernameError::Bidi),
        ];
        for (name, expected) in cases {
            assert_eq!(canonical(name), Err(expected.clone()), "{name:?}");
            assert_eq!(forms(name), Err(expected), "{name:?}");
        }
    }

    #[test]
    fn one_script_per_name_with_common_characters_and_cjk_combinations_allowed() {
        let allowed = [
            "admin",
            "\u{438}\u{432}\u{430}\u{43D}",             // иван
            "\u{5D0}\u{5D1}",                           // Hebrew
            "user_1.test@example.com",                  // ASCII punctuation is Common
            "\u{5C71}\u{7530}\u{305F}\u{308D}\u{3046}", // 山田たろう: Han + Hiragana
            "taro\u{5C71}\u{7530}",                     // Latin + Han
            "Jos\u{E9} P\u{E9}rez",
        ];
        for name in allowed {
            assert!(forms(name).is_ok(), "{name:?}: {:?}", forms(name));
        }
        for mixed in ["\u{430}dmin", "p\u{430}ypal", "\u{3A9}mega", "ivan_\u{438}\u{432}\u{430}\u{43D}"] {
            assert_eq!(forms(mixed), Err(UsernameError::MixedScripts), "{mixed:?}");
            assert!(canonical(mixed).is_ok(), "PRECIS itself allows {mixed:?}; the script rule is UTS #39");
        }
    }

    #[test]
    fn same_script_lookalikes_are_refused_by_the_general_security_profile() {
        let lookalikes = [
            ("\u{251}dmin", 0x251),   // ɑdmin: Latin alpha
            ("\u{1D00}dmin", 0x1D00), // ᴀdmin: small capital A
            ("pay\u{1C0}pal", 0x1C0), // payǀpal: dental click
            ("\u{261}oogle", 0x261),  // ɡoogle: script g
        ];
        for (name, code_point) in lookalikes {
            assert_eq!(forms(name), Err(UsernameError::Restricted(code_point)), "{name:?}");
            assert!(canonical(name).is_ok(), "PRECIS itself allows {name:?}; the profile is UTS #39");
            // What the migration keys such an old row by: its lowercased NFC text, as before.
            assert_eq!(storage_key(name), name.to_lowercase().nfc().collect::<String>(), "{name:?}");
        }
        for name in ["adm\u{269}n", "\u{440}\u{430}\u{443}\u{440}\u{430}", "\u{131}\u{131}"] {
            // admɩn (iota), раура (all Cyrillic), ıı: allowed letters, ASCII lookalikes.
            assert_eq!(forms(name), Err(UsernameError::AsciiLookalike), "{name:?}");
        }
        let allowed = [
            "user-1_x.y@example.com",
            "Alic\u{E9}",
            "I\u{15F}\u{131}k", // Işık
            "O'Brien",
            "\u{418}\u{432}\u{430}\u{43D}",                             // Иван
            "Stra\u{DF}e",                                              // Straße
            "\u{3A3}\u{3C9}\u{3BA}\u{3C1}\u{3AC}\u{3C4}\u{3B7}\u{3C2}", // Σωκράτης
            "\u{5C71}\u{7530}\u{592A}\u{90CE}",                         // 山田太郎
            "\u{30BF}\u{30ED}\u{30A6}",                                 // タロウ
            "\u{AE40}\u{CCA0}\u{C218}",                                 // 김철수
        ];
        for name in allowed {
            assert!(forms(name).is_ok(), "{name:?}: {:?}", forms(name));
        }
    }

    #[test]
    fn names_precis_refuses_keep_a_key_of_their_own() {
        assert_eq!(storage_key("Admin\u{200B}"), "admin\u{200B}");
        assert_ne!(storage_key("Admin\u{200B}"), storage_key("admin"));
    }
}
