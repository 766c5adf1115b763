"""Views of the manager's tools: the labels and macros pages (staff), and labels and macros on a conversation (operators
who may see it; another team's conversation is a 404, through ``inbox.views.base``)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from desk import csat, rules, selectors, services
from desk.forms import LabelForm, MacroForm, PickLabelForm, PickMacroForm, RuleForm, SlaPolicyForm
from desk.models import Label, Macro, Rule, SlaPolicy
from inbox.models import Conversation
from inbox.views import base


def _staff(request: HttpRequest) -> None:
    if not base.operator(request).is_staff:
        raise PermissionDenied(_("Only admins manage labels."))


def _label_or_404(pk: int) -> Label:
    label = selectors.label_or_none(pk)
    if label is None:
        raise Http404(_("No such label."))
    return label


def _invalid(form: LabelForm | MacroForm | RuleForm | SlaPolicyForm, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):  # a refusal of the whole form, not of one field
        form.add_error(None, error)
        return
    for field, errors in error.message_dict.items():
        for message in errors:
            form.add_error(field if field in form.fields else None, message)


@require_http_methods(["GET", "POST"])
@login_required
def label_list(request: HttpRequest) -> HttpResponse:
    """Every label, and a form to add one (staff)."""
    _staff(request)
    form = LabelForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                label = services.create_label(**form.cleaned_data, by=base.operator(request))
            except ValidationError as error:
                _invalid(form, error)
                status = 422
            else:
                messages.success(request, _("Label “%(name)s” added.") % {"name": label.name})
                return HttpResponseRedirect(reverse("desk:labels"))
        else:
            status = 400
    context = {"labels": selectors.all_labels(), "form": form, "colours": Label.Colour.choices}
    return render(request, "desk/labels.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def label_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _staff(request)
    label = _label_or_404(pk)
    initial = {"name": label.name, "colour": label.colour, "description": label.description}
    form = LabelForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.update_label(label=label, **form.cleaned_data, by=base.operator(request))
            except ValidationError as error:
                _invalid(form, error)
                status = 422
            else:
                messages.success(request, _("Label “%(name)s” saved.") % {"name": label.name})
                return HttpResponseRedirect(reverse("desk:labels"))
        else:
            status = 400
    return render(request, "desk/label_form.html", {"label": label, "form": form}, status=status)


@require_POST
@login_required
def label_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _staff(request)
    label = _label_or_404(pk)
    services.delete_label(label=label, by=base.operator(request))
    messages.success(request, _("Label “%(name)s” deleted.") % {"name": label.name})
    return HttpResponseRedirect(reverse("desk:labels"))


@require_POST
@login_required
def add_label(request: HttpRequest, pk: int) -> HttpResponse:
    """Put a label on a conversation; answers with the refreshed thread header."""
    base.conversation_or_404(request, pk)
    form = PickLabelForm(request.POST)
    if not form.is_valid():
        return base.form_problem(request, form)
    label = selectors.label_or_none(form.cleaned_data["label"])
    if label is None:
        return base.problem(request, _("No such label."), status=400)
    return base.act(request, pk, lambda conversation: _labelled(request, conversation, label, add=True))


@require_POST
@login_required
def remove_label(request: HttpRequest, pk: int, label_id: int) -> HttpResponse:
    base.conversation_or_404(request, pk)
    label = _label_or_404(label_id)
    return base.act(request, pk, lambda conversation: _labelled(request, conversation, label, add=False))


def _labelled(request: HttpRequest, conversation: Conversation, label: Label, *, add: bool) -> HttpResponse | None:
    change = services.add_label if add else services.remove_label
    try:
        change(conversation=conversation, label=label, by=base.operator(request))
    except ValidationError as error:
        return base.problem(request, " ".join(error.messages), status=409)
    return None


# -- macros ------------------------------------------------------------------------------------------


def _macro_or_404(pk: int) -> Macro:
    macro = Macro.objects.filter(pk=pk).first()
    if macro is None:
        raise Http404(_("No such macro."))
    return macro


def _save_macro(request: HttpRequest, form: MacroForm, macro: Macro | None) -> Macro:
    fields = {"name": form.cleaned_data["name"], "team_id": getattr(form.cleaned_data["team"], "pk", None)}
    by = base.operator(request)
    if macro is None:
        return services.create_macro(**fields, actions=form.actions(), by=by)
    return services.update_macro(macro=macro, **fields, actions=form.actions(), by=by)


def _macro_form(request: HttpRequest, macro: Macro | None) -> HttpResponse:
    initial = MacroForm.initial_for(macro) if macro is not None else None
    form = MacroForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                saved = _save_macro(request, form, macro)
            except ValidationError as error:
                _invalid(form, error)
                status = 422
            else:
                messages.success(request, _("Macro “%(name)s” saved.") % {"name": saved.name})
                return HttpResponseRedirect(reverse("desk:macros"))
        else:
            status = 400
    context = {"macro": macro, "form": form, "macros": list(Macro.objects.select_related("team"))}
    return render(request, "desk/macros.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def macro_list(request: HttpRequest) -> HttpResponse:
    """Every macro, and a form to add one (staff)."""
    _staff(request)
    return _macro_form(request, None)


@require_http_methods(["GET", "POST"])
@login_required
def macro_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _staff(request)
    return _macro_form(request, _macro_or_404(pk))


@require_POST
@login_required
def macro_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _staff(request)
    macro = _macro_or_404(pk)
    services.delete_macro(macro=macro, by=base.operator(request))
    messages.success(request, _("Macro “%(name)s” deleted.") % {"name": macro.name})
    return HttpResponseRedirect(reverse("desk:macros"))


@require_POST
@login_required
def run_macro(request: HttpRequest, pk: int) -> HttpResponse:
    """Run a macro (``macro``: its id) on a conversation; answers with the refreshed thread header."""
    base.conversation_or_404(request, pk)
    form = PickMacroForm(request.POST)
    if not form.is_valid():
        return base.form_problem(request, form)
    macro = Macro.objects.filter(pk=form.cleaned_data["macro"]).first()
    if macro is None:
        return base.problem(request, _("No such macro."), status=400)

    def run(conversation: Conversation) -> HttpResponse | None:
        try:
            services.run_macro(conversation=conversation, macro=macro, by=base.operator(request))
        except services.MacroFailed as failed:
            return base.problem(request, failed.reason, status=409)
        return None

    return base.act(request, pk, run)


# -- automation rules --------------------------------------------------------------------------------


def _rule_or_404(pk: int) -> Rule:
    rule = Rule.objects.filter(pk=pk).first()
    if rule is None:
        raise Http404(_("No such rule."))
    return rule


def _rule_form(request: HttpRequest, rule: Rule | None) -> HttpResponse:
    initial = RuleForm.initial_for(rule) if rule is not None else None
    form = RuleForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                saved = rules.save_rule(rule=form.fill(rule or Rule()), by=base.operator(request))
            except ValidationError as error:
                _invalid(form, error)
                status = 422
            else:
                messages.success(request, _("Rule “%(name)s” saved.") % {"name": saved.name})
                return HttpResponseRedirect(reverse("desk:rule", args=[saved.pk]))
        else:
            status = 400
    context = {
        "rule": rule,
        "form": form,
        "rules": list(Rule.objects.select_related("team")),
        "dry_run": rules.dry_run(rule) if rule is not None and request.method == "GET" else None,
    }
    return render(request, "desk/rules.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def rule_list(request: HttpRequest) -> HttpResponse:
    """Every rule, in the order they run, and a form to add one (staff)."""
    _staff(request)
    return _rule_form(request, None)


@require_http_methods(["GET", "POST"])
@login_required
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """One rule: its form and its dry run (which recent conversations it would have matched)."""
    _staff(request)
    return _rule_form(request, _rule_or_404(pk))


@require_POST
@login_required
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _staff(request)
    rule = _rule_or_404(pk)
    rules.delete_rule(rule=rule, by=base.operator(request))
    messages.success(request, _("Rule “%(name)s” deleted.") % {"name": rule.name})
    return HttpResponseRedirect(reverse("desk:rules"))


# -- SLA policies ------------------------------------------------------------------------------------


def _policy_or_404(pk: int) -> SlaPolicy:
    policy = SlaPolicy.objects.filter(pk=pk).first()
    if policy is None:
        raise Http404(_("No such SLA policy."))
    return policy


def _sla_staff(request: HttpRequest) -> None:
    if not base.operator(request).is_staff:
        raise PermissionDenied(_("Only admins manage SLA policies."))


def _policy_form(request: HttpRequest, policy: SlaPolicy | None) -> HttpResponse:
    form = SlaPolicyForm(request.POST or None, instance=policy)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                saved = services.save_policy(policy=form.save(commit=False), by=base.operator(request))
            except ValidationError as error:
                _invalid(form, error)
                status = 422
            else:
                messages.success(request, _("SLA policy “%(name)s” saved.") % {"name": saved.name})
                return HttpResponseRedirect(reverse("desk:sla_policies"))
        else:
            status = 400
    context = {
        "policy": policy,
        "form": form,
        "policies": list(SlaPolicy.objects.select_related("team", "label")),
    }
    return render(request, "desk/sla_policies.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def sla_policy_list(request: HttpRequest) -> HttpResponse:
    """Every SLA policy, by team and in the order they are tried, and a form to add one (staff)."""
    _sla_staff(request)
    return _policy_form(request, None)


@require_http_methods(["GET", "POST"])
@login_required
def sla_policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _sla_staff(request)
    return _policy_form(request, _policy_or_404(pk))


@require_POST
@login_required
def sla_policy_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _sla_staff(request)
    policy = _policy_or_404(pk)
    services.delete_policy(policy=policy, by=base.operator(request))
    messages.success(request, _("SLA policy “%(name)s” deleted.") % {"name": policy.name})
    return HttpResponseRedirect(reverse("desk:sla_policies"))


# -- the satisfaction survey's email link (public: the customer has no login) -----------------------


@require_http_methods(["GET", "POST"])
def csat_answer(request: HttpRequest, token: str) -> HttpResponse:
    """The click on a score link in a survey email records that score; the page then offers a
    comment box (POST). A forged, damaged or expired link gets a page saying so (400 / 410)."""
    try:
        if request.method == "POST":
            comment = str(request.POST.get("comment", ""))
            if len(comment) > csat.MAX_COMMENT:
                return render(
                    request,
                    "desk/csat_answer.html",
                    {"problem": _("The comment is too long (at most 2000 characters).")},
                    status=400,
                )
            response = csat.comment_from_link(token=token, comment=comment)
            return render(request, "desk/csat_answer.html", {"response": response, "commented": True})
        response = csat.answer_from_link(token=token)
    except csat.BadToken as exc:
        return render(request, "desk/csat_answer.html", {"problem": exc.reason}, status=exc.status)
    return render(request, "desk/csat_answer.html", {"response": response})
