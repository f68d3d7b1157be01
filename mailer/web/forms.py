"""Form fields more than one blueprint uses."""

from __future__ import annotations

from wtforms import SelectMultipleField, widgets


class CheckboxesField(SelectMultipleField):
    """A list of checkboxes; ids it does not offer are left for the domain to refuse."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def pre_validate(self, form):
        pass  # unknown ids are refused by the service with a clear message
