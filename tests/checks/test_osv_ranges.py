"""OSV range semantics per ecosystem (no database)."""

import pytest

from releasegate.checks.osv import (
    NotComparable,
    advisory_severity,
    affected_severity,
    at_or_above,
    fixed_versions,
    is_affected,
    purl_package,
)


def eco(*events, type_="ECOSYSTEM"):
    return [{"type": type_, "events": list(events)}]


@pytest.mark.parametrize(
    "version, affected",
    [("0.0.1", True), ("1.4.9", True), ("1.5", False), ("1.5.0", False), ("3.0", False)],
)
def test_introduced_zero_up_to_fixed(version, affected):
    assert is_affected("PyPI", version, eco({"introduced": "0"}, {"fixed": "1.5"}), []) is affected


@pytest.mark.parametrize(
    "version, affected",
    [("1.9", False), ("2.0", True), ("2.3", True), ("2.3.post1", False), ("2.4", False)],
)
def test_last_affected_is_included_and_later_versions_are_not(version, affected):
    ranges = eco({"introduced": "2.0"}, {"last_affected": "2.3"})
    assert is_affected("PyPI", version, ranges, []) is affected


@pytest.mark.parametrize(
    "version, affected",
    [
        ("0.9", False),
        ("1.0", True),
        ("1.2", False),
        ("1.9", False),
        ("2.0", True),
        ("2.4.9", True),
        ("2.5", False),
    ],
)
def test_several_intervals_in_one_range_unsorted(version, affected):
    ranges = eco({"introduced": "2.0"}, {"fixed": "2.5"}, {"introduced": "1.0"}, {"fixed": "1.2"})
    assert is_affected("PyPI", version, ranges, []) is affected


def test_multiple_ranges_any_one_matches():
    ranges = eco({"introduced": "1.0"}, {"fixed": "1.1"}) + eco(
        {"introduced": "3.0"}, {"fixed": "3.1"}
    )
    assert is_affected("PyPI", "3.0.5", ranges, [])
    assert not is_affected("PyPI", "2.0", ranges, [])


def test_explicit_versions_match_even_without_ranges():
    assert is_affected("PyPI", "1.2.3", [], ["1.2.3", "1.2.4"])
    assert not is_affected("PyPI", "1.2.5", [], ["1.2.3", "1.2.4"])


def test_git_ranges_alone_do_not_match_a_release_version():
    git = [
        {"type": "GIT", "repo": "https://x", "events": [{"introduced": "0"}, {"fixed": "abc123"}]}
    ]
    assert not is_affected("PyPI", "1.0", git, [])


def test_pypi_pre_release_sorts_before_its_release():
    ranges = eco({"introduced": "0"}, {"fixed": "2.0"})
    assert is_affected("PyPI", "2.0rc1", ranges, [])
    assert not is_affected("PyPI", "2.0.post1", ranges, [])


def test_npm_semver_pre_release_ordering():
    ranges = eco({"introduced": "1.0.0-alpha"}, {"fixed": "1.0.0"}, type_="SEMVER")
    assert is_affected("npm", "1.0.0-rc.1", ranges, [])
    assert is_affected("npm", "1.0.0-alpha", ranges, [])
    assert not is_affected("npm", "1.0.0", ranges, [])
    assert not is_affected("npm", "0.9.9", ranges, [])


def test_maven_ordering_is_numeric_per_segment_and_qualifiers_sort_before_release():
    ranges = eco({"introduced": "2.9.0"}, {"fixed": "2.9.10.2"})
    assert is_affected("Maven", "2.9.10.1", ranges, [])
    assert not is_affected("Maven", "2.10.0", ranges, [])  # lexically smaller, numerically larger
    assert is_affected("Maven", "2.9.10.2-SNAPSHOT", ranges, [])
    assert not is_affected("Maven", "2.9.10.2", ranges, [])


def test_go_versions_with_v_prefix_compare_as_semver():
    ranges = eco({"introduced": "0"}, {"fixed": "1.2.4"}, type_="SEMVER")
    assert is_affected("Go", "v1.2.3", ranges, [])
    assert not is_affected("Go", "v1.10.0", ranges, [])
    assert is_affected("Go", "v0.0.0-20200101000000-abcdef123456", ranges, [])


def test_crates_semver_range():
    ranges = eco({"introduced": "0.3.0"}, {"fixed": "0.3.12"}, type_="SEMVER")
    assert is_affected("crates.io", "0.3.9", ranges, [])
    assert not is_affected("crates.io", "0.3.12", ranges, [])


def test_an_unorderable_version_is_reported_not_guessed():
    with pytest.raises(NotComparable):
        is_affected("Packagist", "dev-master", eco({"introduced": "0"}, {"fixed": "1.0"}), [])


@pytest.mark.parametrize(
    "purl, expected",
    [
        ("pkg:pypi/Django_REST.framework@3.0", ("PyPI", "django-rest-framework", "3.0")),
        ("pkg:npm/%40angular/core@9.0.0", ("npm", "@angular/core", "9.0.0")),
        (
            "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.10",
            ("Maven", "com.fasterxml.jackson.core:jackson-databind", "2.9.10"),
        ),
        (
            "pkg:golang/github.com/gin-gonic/gin@v1.6.0",
            ("Go", "github.com/gin-gonic/gin", "v1.6.0"),
        ),
        ("pkg:cargo/smallvec@1.6.0", ("crates.io", "smallvec", "1.6.0")),
        ("pkg:pypi/requests", None),
        ("not a purl", None),
    ],
)
def test_purls_map_to_osv_packages(purl, expected):
    assert purl_package(purl) == expected


def test_severity_from_database_specific_then_cvss():
    assert advisory_severity({"database_specific": {"severity": "MODERATE"}}) == "medium"
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
    assert advisory_severity({"severity": [{"type": "CVSS_V3", "score": vector}]}) == "critical"
    low = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
    assert advisory_severity({"severity": [{"type": "CVSS_V3", "score": low}]}) == "low"
    assert advisory_severity({}) == ""
    assert affected_severity({"ecosystem_specific": {"severity": "HIGH"}}) == "high"


def test_unknown_severity_counts_as_high():
    assert at_or_above("", "high")
    assert not at_or_above("", "critical")
    assert not at_or_above("medium", "high")
    assert at_or_above("critical", "high")


@pytest.mark.parametrize(
    "version, fixed",
    [
        ("1.26.5", ["1.26.17"]),  # the fix of the interval it falls in, not the later one
        ("2.0.3", ["2.0.6"]),
        ("2.0.6", []),  # not affected: nothing fixes it
        ("3.1", []),  # affected, with no fix named (last_affected only)
    ],
)
def test_fixed_versions_are_the_end_of_the_interval_the_version_falls_in(version, fixed):
    ranges = [
        {
            "type": "ECOSYSTEM",
            "events": [
                {"introduced": "0"},
                {"fixed": "1.26.17"},
                {"introduced": "2.0.0"},
                {"fixed": "2.0.6"},
            ],
        },
        # Another range, which does not affect 1.26.5: its fix is not 1.26.5's.
        {"type": "ECOSYSTEM", "events": [{"introduced": "1.27"}, {"fixed": "1.27.3"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "3.0"}, {"last_affected": "3.2"}]},
        {"type": "GIT", "repo": "https://example.com/x.git", "events": [{"fixed": "abc123"}]},
    ]
    assert fixed_versions("PyPI", version, ranges) == fixed


def test_fixed_versions_of_several_affecting_ranges_are_in_version_order():
    ranges = eco({"introduced": "0"}, {"fixed": "10.0"}) + eco(
        {"introduced": "1.0"}, {"fixed": "9.1"}
    )
    assert fixed_versions("PyPI", "1.5", ranges) == ["9.1", "10.0"]
