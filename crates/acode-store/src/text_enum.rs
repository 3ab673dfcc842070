//! `text_enum!`: an enum stored and shown as fixed lowercase words (roles,
//! statuses, ops), with `as_str`, `Display`, serde, and a `FromStr` whose
//! error names the field and the words it accepts.

macro_rules! text_enum {
    ($field:literal, $(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::StoreError;

            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => {
                        let words: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        Err($crate::error::StoreError::invalid(
                            $field,
                            format!("{:?}: expected one of {}", other.chars().take(64).collect::<String>(), words.join(", ")),
                        ))
                    }
                }
            }
        }
    };
}

pub(crate) use text_enum;
