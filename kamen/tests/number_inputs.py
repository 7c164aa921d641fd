"""Text that looks like a number to Python or Django but is not one a person should be able to
type into Kamen: each is refused with a message, never read as a value, never a 500."""

NOT_NUMBERS = [
    "1e1",
    "1E+1",
    "1e-2",
    "١٠",  # Arabic-Indic ten
    "۱۰",  # Extended Arabic-Indic
    "１０",  # fullwidth
    "१०",  # Devanagari
    "²",
    "1²",
    "1,0,0",
    "1,000",
    "1 0",
    "1_0",
    "+1",
    ".5",
    "5.",
    "0x10",
    "NaN",
    "Infinity",
    "-",
    "--1",
    "1.2.3",
    "\u00a010",  # no-break space
    "10\u3000",  # ideographic space
    "1\x000",
    "99999999999999999999999999999999999999999999999",
]
