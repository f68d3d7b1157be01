"""mailer/paging.py: page counts and the page a link may ask for."""

from dataclasses import dataclass

from mailer.paging import Paged, clamp, page_count


def test_an_empty_list_has_one_page_and_every_request_lands_on_a_page_that_exists():
    assert page_count(0, 50) == 1 and page_count(50, 50) == 1 and page_count(51, 50) == 2
    assert clamp(0, 120, 50) == 1 and clamp(-3, 120, 50) == 1
    assert clamp(9, 120, 50) == 3  # the list shrank since the link was made: its last page
    assert clamp(9, 0, 50) == 1


def test_a_page_dataclass_gets_its_page_count_from_the_mixin():
    @dataclass(frozen=True)
    class Things(Paged):
        things: list
        total: int
        page: int
        per_page: int

    assert Things([], 101, 1, 25).pages == 5
