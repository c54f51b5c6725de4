"""Post Django admin forms the way a browser would: what the page shows, plus changes."""

from django import forms
from django.contrib.admin.helpers import InlineAdminFormSet


def _field_data(form: forms.BaseForm, data: dict) -> None:
    for name, field in form.fields.items():
        key = form.add_prefix(name)
        value = form[name].value()
        if isinstance(field.widget, forms.SplitDateTimeWidget):
            parts = field.widget.decompress(value)
            data[key + "_0"], data[key + "_1"] = (str(p or "") for p in parts)
        elif isinstance(field, forms.BooleanField):
            if value:
                data[key] = "on"
        elif isinstance(value, list | tuple):
            data[key] = [str(v) for v in value]
        else:
            data[key] = "" if value is None else str(value)


def admin_form_data(response, **changes) -> dict:
    """The POST body of an admin add/change page as shown, with `changes` applied.

    Inline rows are keyed `<prefix>-<n>-<field>`; pass those in `changes` as well."""
    data: dict = {}
    _field_data(response.context["adminform"].form, data)
    for inline in response.context.get("inline_admin_formsets", []):
        formset = inline.formset if isinstance(inline, InlineAdminFormSet) else inline
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = str(management[name].value())
        for form in formset.forms:
            _field_data(form, data)
    data.update(changes)
    return data
