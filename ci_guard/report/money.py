"""Kept so code written against the old place still imports: money formatting is :mod:`ci_guard.money`.

It moved below every package (policy and meter format money too) so neither points up into report/.
"""

from ci_guard.money import burn_bar as burn_bar
from ci_guard.money import format_duration as format_duration
from ci_guard.money import format_tokens as format_tokens
from ci_guard.money import format_usd as format_usd
from ci_guard.money import percent as percent
from ci_guard.money import to_decimal as to_decimal
