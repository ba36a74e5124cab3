import pytest

from spawners.site.units import (
    format_memory,
    format_walltime,
    parse_memory_mib,
    parse_walltime_seconds,
)


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("2G", 2048),
        ("512M", 512),
        ("512", 512),
        ("1T", 1048576),
        ("4GiB", 4096),
        (256, 256),
        ("8g", 8192),
    ],
)
def test_memory_spellings(text, mib):
    assert parse_memory_mib(text) == mib


@pytest.mark.parametrize("text", ["", "lots", "2 X", "-1G", "0", "1.5G", "4G;rm", True, "9" * 20])
def test_memory_garbage_is_refused(text):
    with pytest.raises(ValueError):
        parse_memory_mib(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("02:00:00", 7200),
        ("90", 5400),
        ("1-00", 86400),
        ("1-02:03:04", 93784),
        ("10:30", 630),
        (15, 900),
    ],
)
def test_walltime_spellings(text, seconds):
    assert parse_walltime_seconds(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "forever", "2h", "1:2:3:4", "00:00:00", "-5", "1-", "02:00:00\n#SBATCH"]
)
def test_walltime_garbage_is_refused(text):
    with pytest.raises(ValueError):
        parse_walltime_seconds(text)


def test_formatting_round_trips():
    assert format_memory(2048) == "2G"
    assert format_memory(1536) == "1536M"
    assert format_walltime(93784) == "1-02:03:04"
    assert parse_walltime_seconds(format_walltime(7200)) == 7200
