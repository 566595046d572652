# Concord web UI: English. Every key here must exist in every other file (a test checks).
# TLP labels are never translated (FIRST TLP 2.0) and so never appear here.
language-name = English
language = Language
language-apply = Apply
skip-to-content = Skip to content
nav-label = Main
nav-collections = Collections
nav-import = Import
nav-pattern = Pattern check
nav-partners = Partners
nav-groups = Sharing groups
nav-peers = Peers
nav-policy = Policy
nav-audit = Audit log
nav-incidents = Incidents
logout = Log out
breadcrumb = You are here
none = None.
pages = Pages
page-prev = Previous
page-next = Next
page-of = Page { $page }

login-title = Log in
login-help = Log in with your user name, password and, if your role needs one, the code of your authenticator app; or, without a name, with the node's admin token or your partner API key (`concord_…`).
login-user = User name (empty for a token or API key)
login-token = Password, token or API key
login-totp = Authenticator code (6 digits, if asked)
login-submit = Log in
login-failed = These credentials are not valid.
login-throttled = Too many login attempts: wait a moment and try again.
login-oidc = Log in with single sign-on
login-or = or, with a password, token or key:
oidc-refused = The identity provider's account { $name } does not open a session on this node: it is not linked to a user of this node, or that user's role needs a second factor the provider did not report. An operator can tell which from the node's log.
oidc-no-claim = The identity provider's ID token has no { $claim } claim, which names the user on this node.
oidc-state = This login is unknown, expired or already used. Start again from the login page.
oidc-browser = This login was started in another browser. Start again from the login page.
oidc-provider-error = The identity provider refused the login: { $error }
oidc-failed = The login through the identity provider failed: { $reason }
oidc-busy = Too many logins are being started from your address: wait a few minutes and try again.
oidc-too-long = The identity provider's answer is longer than { $limit } bytes.
oidc-done-title = Logged in
oidc-continue = Continue

error-admin-only = Only the node's operator (admin token) may open this page.
error-role = Your role ({ $role }) does not allow this page or action.
error-no-collection = No collection { $name } that you may read.
error-no-object = No object { $id } that you may see in this collection.
error-no-version = No version { $version } of this object that you may see.
error-no-page = No such page.
error-no-partner = No partner named { $name }.
error-filter = Filter { $parameter } not understood

collections-title = Collections
collections-none = No collection you may read yet. Import a file to create one.
col-title = Title
col-id = Alias or id
col-versions = Object versions
col-name = Name
col-type = Type
col-tlp = TLP
col-date-added = Date added
col-modified = Modified
col-property = Property
col-object = Object
col-rule = Rule
col-detail = What it decided
col-sighting = Sighting
col-count = Count
col-first-seen = First seen
col-last-seen = Last seen
col-where = Where sighted
col-place = Place
col-reason = Rule broken
col-jurisdiction = Jurisdiction
col-groups = Groups
col-read = Reads
col-write = Writes
col-key-id = Key id
col-created = Created
col-group = Group
col-members = Members
col-collection = Collection
col-collections = Collections
col-default-tlp = Default TLP
col-recipients = Named recipients
col-partner = Partner
col-interval = Interval (s)
col-last-round = Last round
col-last-success = Last success
col-pulled = Pulled
col-pushed = Pushed
col-last-error = Last error
col-time = Time
col-direction = Direction
col-door = Door
col-decision = Decision
col-policy-version = Policy version

filter-text = Text in name or description
filter-type = Type
filter-marking = Marking
filter-any = Any
filter-unmarked = No marking
filter-added-after = Added on or after
filter-added-before = Added before
filter-apply = Filter
objects-caption = Objects of the collection, newest first
objects-count = { $count ->
    [one] One object
   *[other] { $count } objects
}

object-graph = Relationship graph
object-translated = Some fields are shown translated into your language; the original is one click away under each.
object-show-original = Original
object-properties = Properties
object-markings = Markings
object-no-markings = No object markings.
object-versions = Versions
object-refs-out = References from this object
object-refs-in = References to this object
object-refs-more = … and { $count } more, not listed.
object-sightings = Sightings received
object-json = JSON of version { $version }

as-partner-label = View as partner
as-partner-none = (myself)
as-partner-apply = Show
as-partner-title = What { $partner } receives
as-partner-steps = Rules applied, in order
as-partner-copy = The copy that leaves the node
decision-sent = Sent as stored
decision-rewritten = Sent rewritten
decision-withheld = Withheld

graph-title = Relationship graph
graph-depth = Hops
graph-apply = Redraw
graph-nodes = { $count ->
    [one] One object
   *[other] { $count } objects
}
graph-truncated = Only the nearest 200 objects are drawn.
graph-help = Drag to pan, Ctrl + mouse wheel or + and − to zoom in and out, the arrow keys to pan, 0 to go back to the drawn size; the wheel alone scrolls a large drawing. Each node links to its object page.
graph-as-list = The same objects as a list

import-title = Import
import-help = A `STIX 2.1` bundle, a MISP event (JSON), or an IOC list with one IP, CIDR, domain, URL, hash or e-mail address per line. Every object is checked; a file that cannot be read stores nothing.
import-collection = Collection
import-new-collection = Or a new collection (alias)
import-format = Format
import-format-auto = Detect (STIX or MISP)
import-format-stix = STIX 2.1 bundle
import-format-misp = MISP event JSON
import-format-ioc = IOC list
import-file = File
import-submit = Import
import-no-file = Choose a non-empty file.
import-no-collection = Choose a collection.
import-not-allowed = You may not write to { $name }.
import-report = Import report
import-read-as = Read as
import-total = Objects read
import-added = Added
import-present = Already present
import-problems = Problems
import-misp-events = { $count ->
    [one] one event
   *[other] { $count } events
}
import-misp-attributes = { $count ->
    [one] one attribute
   *[other] { $count } attributes
}
import-lines = Lines
import-duplicates = { $count } duplicates
import-open-collection = Open the collection

pattern-title = Pattern check
pattern-help = Checks a `STIX 2.1` pattern against the grammar and every rule of the specification.
pattern-label = STIX pattern
pattern-submit = Check
pattern-invalid = The pattern is not valid:
pattern-valid = { $count ->
    [one] Valid pattern, one observation expression.
   *[other] Valid pattern, { $count } observation expressions.
}

partners-title = Partners
partners-help = Partner organisations with their API keys (only the key id is shown) and permissions.
partners-node-jurisdiction = This node's jurisdiction: { $code }.
partners-none = No partners yet (`concord partner add`).
partner-directory-heading = Directory
partner-organisation = Organisation
partner-identity = STIX identity
partner-contacts = Contacts
partner-origin = Added by
partner-changed = Last changed
partner-agreement = Agreement
partner-agreement-theirs = (the partner holds { $version })
partner-last-activity = Last activity
partner-unknown = unknown
partner-none = none
partner-never = never
partner-keys-heading = Keys and fingerprints
partner-key-value = Key
partner-fingerprint = Fingerprint
partner-key-api-key = API key (id)
partner-key-node-key = Node key (Ed25519)
partner-key-client-certificate = Client certificate (SHA-256)
partner-contact-text = Contact
partner-contact-email = E-mail
partner-contact-phone = Telephone
partner-contact-website = Website
partner-update-heading = Change access
partner-update-help = Grants, groups and jurisdiction change in place: the partner keeps its API key, and every server applies the change at the partner's next request. The change is recorded in the audit log.
partner-groups-field = Groups (comma-separated)
partner-grants-caption = Collections it may read and write
partner-update-submit = Save changes
partner-updated = Saved. Every server applies the change within seconds.
partner-pending = This change widens what the partner receives across a border: it waits for a second releaser's approval ({ $id }).
partner-not-found = No such partner.
groups-title = Sharing groups
groups-help = `TLP:GREEN` goes to a collection's groups (or the whole community); `TLP:AMBER` to its named recipients.
groups-members = Groups and their members
groups-sharing = How each collection is shared
groups-community = whole community
peers-title = Peers
peers-help = TAXII servers this node synchronises with, and the state of their last round.
peers-none = No peers (`concord peer add`).
peers-failures = { $count ->
    [one] one failure in a row
   *[other] { $count } failures in a row
}
policy-title = Egress policy
policy-help = The policy in force (read-only; edit the `[policy]` section of `concord.toml` and restart).
policy-version = Version
audit-title = Audit log
audit-intact = { $count ->
    [one] Hash chain intact: one entry.
   *[other] Hash chain intact: { $count } entries.
}
audit-broken = The hash chain is broken
audit-scope = { $count ->
    [one] Verified here: the entries shown and the one signed checkpoint; `concord audit verify` checks the rest.
   *[other] Verified here: the entries shown and { $count } signed checkpoints; `concord audit verify` checks the rest.
}
col-objects = Object versions
col-transformations = Transformations

## Incidents (issue 18): the board, an incident's page and its forms.
incidents-title = Incidents
incidents-help = Open incidents and the requests for assistance they carry, overdue first. Requests and answers travel to partners by sync, through the egress policy.
incidents-open-heading = Open incidents
incidents-none = No open incident.
incidents-requests-heading = Requests for assistance by status
incidents-no-requests = No request for assistance.
incident-none = No incident { $id } on this node.
incident-criticality = Criticality (0–100 or none, low, medium, high, critical)
incident-affects = Countries affected (ISO 3166-1 alpha-2)
incident-opened-by = Opened by
incident-requests = Requests
incident-overdue = Overdue
incident-overdue-flag = overdue
incident-incoming = (asked of this node)
incident-status = Status
incident-deadline = Deadline
incident-deadline-utc = Deadline (UTC)
incident-from = From
incident-to = To
incident-ask = What is asked
incident-incident = Incident
incident-description = Description
incident-outcome = Outcome
incident-priority = Priority (0–100 or none, low, medium, high, critical)
incident-note = Reason or outcome (a decline needs a reason)
incident-open-heading = Open an incident
incident-open-submit = Open the incident
incident-request-heading = Request assistance from a partner
incident-request-submit = Send the request
incident-respond-heading = Requests to this node
incident-respond-submit = Answer
incident-settled = Settled: this request takes no further answer.
incident-timeline = Timeline
timeline-opened = Opened by { $who }
timeline-request = { $who } asked
timeline-answer = { $who } answered
timeline-event = Event
timeline-closed = Closed by { $who }
incident-status-open = open
incident-status-closed = closed
incident-status-pending = pending
incident-status-acknowledged = acknowledged
incident-status-accepted = accepted
incident-status-declined = declined
incident-status-done = done

## Issue 25, item 2: content (Markdown descriptions, citations, external references).
object-external-refs = External references
object-url-not-web = (not an http or https address, so not a link)

## Issue 25, item 4: reading an object (references named and grouped, effective TLP,
## error pages, the words of the audit log and of the policy rules).
object-tlp-default = the collection's default: this object has no TLP marking
refs-in-group = … { $label } → this object
refs-out-group = This object { $label } → …
refs-via = details
error-home = Back to the collections
error-title-400 = Bad request
error-title-401 = Not logged in
error-title-403 = Forbidden
error-title-404 = Not found
error-title-413 = Too large
error-title-429 = Too many requests
error-title-503 = Busy
error-title-other = Error
col-seq = Entry
col-url = URL
audit-direction-egress = out
audit-direction-ingress = in
audit-direction-admin = change
audit-decision-sent = sent
audit-decision-rewritten = rewritten
audit-decision-withheld = withheld
audit-decision-added = added
audit-decision-already-present = already present
audit-decision-deleted = deleted
audit-decision-changed = changed
rule-permission = Permission
rule-agreement = Agreement
rule-tlp = TLP gate
rule-addressed = Addressed to named partners
rule-jurisdiction = Jurisdiction
rule-important-data = Important data
rule-granular-markings = Granular markings
rule-grant = Grant
rule-personal-data = Personal data
rule-validation = Validity of the copy
rule-references = References
rule-identifier = Identifier

# Home dashboard and graph (issue 25, items 3 and 5)
nav-home = Home
dashboard-title = Home
dashboard-new = New since your last visit
dashboard-first-visit = Your first visit: what was added in the last seven days, since
dashboard-since = Added since
dashboard-nothing-new = Nothing new.
dashboard-total = Total
dashboard-sightings-heading = Sightings received in the last { $days } days
dashboard-sightings-cut = More sightings were received in this period than the { $max } counted here (the first received).
dashboard-no-sightings = No sightings received.
dashboard-sightings-by-indicator = Sightings per indicator and day
dashboard-sightings-by-partner = Sightings per partner and day (who sent them)
dashboard-indicator = Indicator
dashboard-sightings = Sightings
dashboard-times-seen = Times seen
dashboard-false-positives = False-positive reports
dashboard-others = All others
dashboard-this-node = This node
dashboard-waiting = Requests waiting for an answer
dashboard-nothing-waiting = No request is waiting for an answer.
dashboard-who-answers = Who answers
dashboard-we-answer = This node
dashboard-more-requests = { $count ->
    [one] One more on the incidents board
   *[other] { $count } more on the incidents board
}
dashboard-sync = Sync health
dashboard-health = State
dashboard-health-ok = in sync
dashboard-health-failing = failing
dashboard-health-never = no round yet
dashboard-week = What went to each partner this week
dashboard-week-yours = What you received this week
dashboard-week-caption = Objects received per partner and day, from the audit log
dashboard-objects-received = Objects received
dashboard-withheld = Withheld
dashboard-transfers = Transfers
dashboard-transfers-cut = Only the newest 10,000 transfers of the week are counted.
dashboard-nothing-sent = Nothing was sent this week.
chart-as-table = The same figures as a table
graph-legend = Legend
graph-group-expand = a group: press Enter or click to show its objects
graph-no-group = expand: no group { $key } in this graph (the link is out of date; redraw the graph)
nav-approvals = Approvals
approvals-title = Approvals pending
approvals-help = Changes that widen what a partner across a border receives (a lower default TLP, a new recipient or sharing group, a grant in an incident) wait here for a second releaser. Approving applies the change; both names go into the audit log.
approvals-off = Four-eyes release is off on this node ({ $key } in concord.toml): such changes apply at once.
approvals-none = No change is waiting for approval.
approvals-requested-by = Asked by
approvals-own = You asked for this change: another releaser must approve it.
approvals-not-person = You are signed in without a name (the admin token): four-eyes release takes approvals from named releasers only.
approvals-approve = Approve and apply
approvals-reject = Reject
approvals-withdraw = Withdraw
approvals-reason = Reason (optional)
approvals-done-approved = Approved: the change is applied.
approvals-done-rejected = Rejected: nothing was applied.
approval-subject-collection = Collection { $name }
approval-subject-partner = Partner { $name }
approval-subject-incident = Incident { $name }
approval-list-separator = {", "}
widens-tlp = { $partner } ({ $jurisdiction }) receives { $tlp }
widens-tlp-from = { $partner } ({ $jurisdiction }) receives { $tlp } from { $collection }
widens-unmarked = { $partner } ({ $jurisdiction }) receives the unmarked objects ({ $tlp })
widens-unmarked-from = { $partner } ({ $jurisdiction }) receives the unmarked objects ({ $tlp }) from { $collection }
widens-grant = { $partner } ({ $jurisdiction }) receives { $categories } as written in { $incident }
widens-group = { $partner } ({ $jurisdiction }) joins the sharing group { $group }
widens-domestic = { $partner } moves from { $from } to { $to } and becomes domestic
widens-personal-data = { $partner } ({ $jurisdiction }) receives { $category } by { $to }, no longer by { $from }
widens-agreement = { $partner } ({ $jurisdiction }) leaves the agreement { $from } for { $to }
widens-agreement-none = { $partner } ({ $jurisdiction }) leaves the agreement { $from }; no agreement applies
widens-pseudonyms = { $partner } ({ $jurisdiction }) receives the pseudonyms of group { $group } in { $collection }
dashboard-approvals = Approvals pending
dashboard-approvals-count = { $count ->
    [one] One change waits for a second releaser.
   *[other] { $count } changes wait for a second releaser.
}
dashboard-no-approvals = No change waits for approval.

# Explanations of the egress policy (issue 25): one message per clause of
# concord_policy::explain::ENGLISH, its parameters as arguments.
explain-and = { "; " }
explain-colon = :
explain-withheld = withheld: { $reason }
explain-permission-may-read = { $partner } may read collection { $collection }
explain-permission-may-not-read = { $partner } may not read collection { $collection } (`partner add --read`): nothing leaves by this collection
explain-permission-none = no read permission
explain-stored-unparsable = the stored object cannot be decided: { $error }
explain-stored-missing = the stored object is missing
explain-no-copy = no copy was made
explain-tlp-definition-public = a TLP marking definition: public, always sent
explain-tlp-level = { $tlp } ({ $whence })
explain-tlp-from-markings = the strictest TLP of `object_marking_refs`
explain-tlp-from-default = no TLP marking: the collection's `default_tlp`
explain-tlp-may-receive = { $partner } may receive it: { $why }
explain-tlp-clear-everyone = TLP:CLEAR goes to every partner with read access
explain-tlp-green-community = the collection is shared with the whole community
explain-tlp-green-shared-groups = it shares the group(s) { $groups } with the collection
explain-tlp-named-recipient = a named recipient of the collection ({ $recipients })
explain-tlp-green-not-in-groups = TLP:GREEN is shared with the groups { $groups }, and { $partner } belongs to none of them
explain-tlp-not-recipient = { $tlp } goes only to the collection's named recipients, and { $partner } is not one
explain-tlp-red-never = TLP:RED never leaves the node
explain-markings-not-list = `object_marking_refs` is not a list
explain-markings-non-string = `object_marking_refs` holds a non-string { $value }
explain-marking-undecidable = { $detail }
explain-marking-unknown = `object_marking_refs`: { $marking } is no marking definition this collection holds, so what it asks cannot be decided
explain-addressed-to = addressed to { $names }
explain-addressed-via = refers to { $request }, addressed to { $names }
explain-addressed-named = { $partner } is a named recipient of this object
explain-addressed-none-in-common = its addressed references name no partner in common, so { $partner } may not receive it
explain-addressed-others = addressed to { $names } only, and { $partner } is not one of them
explain-agreement-ended = agreement { $agreement } with { $partner } ended at { $end } (IEP 2.0 `end_date`): nothing flows after it
explain-agreement-not-yet = agreement { $agreement } with { $partner } takes effect at { $start } (IEP 2.0 `start_date`): nothing flows before it
explain-agreement-received-ended = the agreement { $partner }'s node holds with this node ({ $version }) ended at { $end } (IEP 2.0 `end_date`): nothing flows after it
explain-agreement-version-none = none
explain-agreement-door = agreement { $agreement }: { $reason }
explain-iep-automated-door = IEP 2.0 `permitted_actions` { $actions }: the automated door { $door } carries nothing (a machine would act on it)
explain-iep-feed-door = IEP 2.0 `permitted_actions` { $actions }: the feed { $door } carries nothing (sensor rules act visibly outside the recipient's networks)
explain-agreement-applies = agreement { $agreement } applies to { $partner }
explain-agreement-until = in effect until { $end } (IEP 2.0 `end_date`)
explain-agreement-permitted-actions = `permitted_actions` { $actions }
explain-agreement-transfer = transfer mechanism { $mechanism }, legal basis: { $basis }
explain-no-mechanism-code = no mechanism code
explain-not-stated = not stated
explain-pap-too-strict = { $pap } is stricter than { $limit }, the strictest PAP the automated door { $door } carries to { $partner } under { $whose }
explain-pap-of-agreement = agreement { $agreement }'s `pap_automated`
explain-pap-default = the default (no agreement)
explain-pap-within = { $pap } is within { $limit }, the strictest PAP the automated door { $door } carries
explain-pap-person = { $pap }: { $door } is read by a person, not an automated door
explain-attribution-created-by-removed = removed `created_by_ref` (agreement { $agreement }: IEP 2.0 attribution must-not)
explain-attribution-identity = agreement { $agreement }: IEP 2.0 attribution must-not: an identity that can name the producer does not leave
explain-attribution-identity-ref = agreement { $agreement }: IEP 2.0 attribution must-not: its { $property } names an identity
explain-attribution-removed = { $removed }
explain-attribution-refs-removed = removed references to identities from { $properties } (agreement { $agreement }: IEP 2.0 attribution must-not)
explain-jurisdiction-none = the node has no jurisdiction: { $partner } ({ $partner_jurisdiction }) counts as across a border
explain-jurisdiction-cross = node { $node }, { $partner } { $partner_jurisdiction }: across a border
explain-jurisdiction-domestic = node { $node }, { $partner } { $partner_jurisdiction }: domestic
explain-important-none = no important-data marking
explain-important-cross = marked as important data ({ $marking }): never crosses a border
explain-important-domestic = marked as important data ({ $marking }); the partner is domestic, so it may go
explain-important-withheld = marked as important data ({ $marking }), which never crosses a border (node { $node }, { $partner } { $partner_jurisdiction })
explain-node-without-jurisdiction = without jurisdiction
explain-granular-nothing = nothing removed
explain-granular-removed = removed { $selector } (granular { $why })
explain-granular-important = important data
explain-granular-unresolved = unresolved { $marking }
explain-granular-absent = removed granular markings of absent properties
explain-grant = granted on { $scope } for { $partner }: { $categories } as written
explain-pii-allowed = allowed { $category } at { $place } (rule { $rule })
explain-pii-pseudonymised = pseudonymised { $category } at { $place } (rule { $rule })
explain-pii-redacted = redacted { $category } at { $place } (rule { $rule })
explain-pii-redacted-no-key = redacted (no pseudonym key) { $category } at { $place } (rule { $rule })
explain-pii-drop = { $category } at { $place } (rule { $rule }: drop)
explain-pii-pattern-unparsable = pattern at { $path } does not parse: { $error }
explain-pii-id-recomputed = id { $old } recomputed as { $new }
explain-pii-all-allowed = every category of personal data is allowed for { $partner } (rule { $rules }): not scanned
explain-pii-none-found = no personal data found that the policy does not allow
explain-place-literal = { $path } literal { $literal }
explain-place-key = { $path } (key)
explain-rule-grant = grant on { $scope } for { $partner }
explain-rule-partner = partner { $partner }
explain-rule-pair = pair { $from }->{ $to }
explain-sent-as-stored = sent as stored, byte for byte
explain-copy-validates = the rewritten copy validates (STIX 2.1)
explain-copy-invalid = the partner's copy would be invalid ({ $violation }) after: { $changes }
explain-ref-valid-without = valid without any of its references: received whatever their fates
explain-ref-withheld = refers to objects this partner does not receive ({ $removed }), and without the reference it is not valid STIX: { $violation }
explain-ref-removed = { $count } reference(s) removed ({ $removed }), { $renamed } following renamed objects
explain-ref-removed-item = { $property }: { $why }
explain-ref-all-received = every object referred to is received as referred to
explain-ref-too-deep = { $id } is too far along a chain of references to be decided
explain-ref-target-withheld = { $id } is withheld
explain-ref-cycle = { $id }: a cycle of references that cannot be decided
explain-ref-sco-not-held = { $id }: an SCO this collection does not hold (its id derives from its value)
explain-ref-other-collection = { $id } is held in another collection, not shared by this one
explain-sco-no-key = a rewritten SCO needs a keyed id, and the node has no key
explain-keyed-id = the copy differs from the stored SCO: sent under the keyed id { $id }
