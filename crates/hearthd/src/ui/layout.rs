//! The frame every page shares, and the pages that need no data: sign-in and errors.

use maud::{DOCTYPE, Markup, html};

use super::assets;

/// Which item of the navigation a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Home,
    Library,
    Search,
    Concepts,
    Ask,
    Settings,
}

const NAV: [(Nav, &str, &str); 6] = [
    (Nav::Home, "/", "Home"),
    (Nav::Library, "/library", "Library"),
    (Nav::Search, "/search", "Search"),
    (Nav::Concepts, "/concepts", "Concepts"),
    (Nav::Ask, "/ask", "Ask"),
    (Nav::Settings, "/settings", "Settings"),
];

/// A page for a signed-in browser: the navigation, sign-out, and `body`.
pub fn signed_in(title: &str, active: Nav, body: Markup) -> Markup {
    frame(
        title,
        html! {
            header.top {
                a.brand href="/" { "hearth" }
                nav aria-label="Main" {
                    ul {
                        @for (nav, href, label) in NAV {
                            li {
                                @if nav == active {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                    }
                }
                form.signout method="post" action="/signout" {
                    button type="submit" { "Sign out" }
                }
            }
            main #main { (body) }
        },
    )
}

fn frame(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hearth" }
                link rel="stylesheet" href=(assets::url("app.css"));
                link rel="icon" href=(assets::url("icon.svg")) type="image/svg+xml";
                script src=(assets::url("app.js")) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (content)
            }
        }
    }
}

/// The sign-in form; `notice` for news (signed out), `error` for a refused attempt.
pub fn sign_in(next: &str, notice: Option<&str>, error: Option<&str>) -> Markup {
    frame(
        "Sign in",
        html! {
            main #main .narrow {
                h1 { "Sign in to hearth" }
                @if let Some(notice) = notice {
                    p.notice role="status" { (notice) }
                }
                @if let Some(error) = error {
                    p.error #signin-error role="alert" { (error) }
                }
                form method="post" action="/signin" {
                    input type="hidden" name="next" value=(next);
                    label for="secret" { "Setup code or API token" }
                    input #secret type="password" name="secret" required autocomplete="off"
                        autofocus aria-describedby="secret-help";
                    p.help #secret-help {
                        "The setup code is shown on the appliance's console, and "
                        code { "hearth setup-code" } " prints it over ssh."
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// A failure in words, with the way back home.
pub fn error_page(title: &str, message: &str) -> Markup {
    frame(
        title,
        html! {
            main #main .narrow {
                h1 { (title) }
                p.error role="alert" { (message) }
                p { a href="/" { "Back to Home" } }
            }
        },
    )
}
