//! The tables the checker reads: per-type required properties and co-constraints (STIX 2.1
//! §4 SDOs, §5 SROs, §6 SCOs, §7 meta objects), predefined SCO extensions (§6), reference
//! target rules (the `_ref`/`_refs` properties whose target type the spec restricts) and the
//! closed enumerations (§10) that the spec makes MUST.

/// What the spec says one object type MUST have.
pub(crate) struct TypeSpec {
    /// The `type` value.
    pub name: &'static str,
    /// Section of STIX 2.1 defining the type.
    pub section: &'static str,
    /// Properties marked "required" in the type's property table.
    pub required: &'static [&'static str],
    /// Properties of type `timestamp` (checked as STIX timestamps, §2.15).
    pub timestamps: &'static [&'static str],
    /// `(earlier, later, strict)`: when both are present, `later` MUST be later than
    /// (`strict`) or later than or equal to `earlier`.
    pub order: &'static [(&'static str, &'static str, bool)],
    /// Integer properties with an inclusive range.
    pub ints: &'static [(&'static str, i64, i64)],
    /// Properties (or lists of them) whose values come from a closed enumeration.
    pub enums: &'static [(&'static str, &'static [&'static str])],
    /// At least one of these MUST be present (empty: no such rule).
    pub one_of: &'static [&'static str],
    /// Object-specific rules that do not fit a table.
    pub extra: Extra,
}

/// Type-specific rules implemented in code (see `validate::Checker::extra`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Extra {
    None,
    Malware,
    MalwareAnalysis,
    ObservedData,
    Location,
    MarkingDefinition,
    Artifact,
    EmailMessage,
    NetworkTraffic,
    MacAddr,
    WindowsRegistryKey,
    /// "at least one of the properties defined for this object MUST be included" (§6.13,
    /// §6.16, §6.17, §6.18): some property besides the common ones.
    AnyProperty,
}

const NO: &[&str] = &[];

/// `or!(default)` is `default`, `or!(default, value)` is `value`: optional macro arguments.
macro_rules! or {
    ($d:expr) => {
        $d
    };
    ($d:expr, $e:expr) => {
        $e
    };
}

macro_rules! spec {
    ($name:literal, $sec:literal, req: $req:expr $(, ts: $ts:expr)? $(, order: $order:expr)?
     $(, ints: $ints:expr)? $(, enums: $enums:expr)? $(, one_of: $one:expr)? $(, extra: $extra:expr)?) => {
        TypeSpec {
            name: $name,
            section: $sec,
            required: $req,
            timestamps: or!(NO $(, $ts)?),
            order: or!(&[] $(, $order)?),
            ints: or!(&[] $(, $ints)?),
            enums: or!(&[] $(, $enums)?),
            one_of: or!(NO $(, $one)?),
            extra: or!(Extra::None $(, $extra)?),
        }
    };
}

const SEEN: &[&str] = &["first_seen", "last_seen"];
const SEEN_ORDER: &[(&str, &str, bool)] = &[("first_seen", "last_seen", false)];
const MAX_COUNT: i64 = 999_999_999;

/// Every type STIX 2.1 defines, with its MUST rules.
pub(crate) static TYPES: &[TypeSpec] = &[
    // §4 STIX Domain Objects
    spec!("attack-pattern", "4.1", req: &["name"]),
    spec!("campaign", "4.2", req: &["name"], ts: SEEN, order: SEEN_ORDER),
    spec!("course-of-action", "4.3", req: &["name"]),
    spec!("grouping", "4.4", req: &["context", "object_refs"]),
    spec!("identity", "4.5", req: &["name"]),
    spec!("incident", "4.6", req: &["name"]),
    spec!("indicator", "4.7", req: &["pattern", "pattern_type", "valid_from"],
          ts: &["valid_from", "valid_until"], order: &[("valid_from", "valid_until", true)]),
    spec!("infrastructure", "4.8", req: &["name"], ts: SEEN, order: SEEN_ORDER),
    spec!("intrusion-set", "4.9", req: &["name"], ts: SEEN, order: SEEN_ORDER),
    spec!("location", "4.10", req: NO, extra: Extra::Location),
    spec!("malware", "4.11", req: &["is_family"], ts: SEEN, order: SEEN_ORDER, extra: Extra::Malware),
    spec!("malware-analysis", "4.12", req: &["product"],
          ts: &["analysis_started", "analysis_ended", "submitted"], one_of: &["result", "analysis_sco_refs"],
          extra: Extra::MalwareAnalysis),
    spec!("note", "4.13", req: &["content", "object_refs"]),
    spec!("observed-data", "4.14", req: &["first_observed", "last_observed", "number_observed"],
          ts: &["first_observed", "last_observed"], order: &[("first_observed", "last_observed", false)],
          ints: &[("number_observed", 1, MAX_COUNT)], extra: Extra::ObservedData),
    spec!("opinion", "4.15", req: &["opinion", "object_refs"],
          enums: &[("opinion", &["strongly-disagree", "disagree", "neutral", "agree", "strongly-agree"])]),
    spec!("report", "4.16", req: &["name", "published", "object_refs"], ts: &["published"]),
    spec!("threat-actor", "4.17", req: &["name"], ts: SEEN, order: SEEN_ORDER),
    spec!("tool", "4.18", req: &["name"]),
    spec!("vulnerability", "4.19", req: &["name"]),
    // §5 STIX Relationship Objects
    spec!("relationship", "5.1", req: &["relationship_type", "source_ref", "target_ref"],
          ts: &["start_time", "stop_time"], order: &[("start_time", "stop_time", true)]),
    spec!("sighting", "5.2", req: &["sighting_of_ref"], ts: SEEN, order: SEEN_ORDER,
          ints: &[("count", 0, MAX_COUNT)]),
    // §6 STIX Cyber-observable Objects
    spec!("artifact", "6.1", req: NO,
          enums: &[("encryption_algorithm", &["AES-256-GCM", "ChaCha20-Poly1305", "mime-type-indicated"])],
          one_of: &["payload_bin", "url"],
          extra: Extra::Artifact),
    spec!("autonomous-system", "6.2", req: &["number"]),
    spec!("directory", "6.3", req: &["path"], ts: &["ctime", "mtime", "atime"]),
    spec!("domain-name", "6.4", req: &["value"]),
    spec!("email-addr", "6.5", req: &["value"]),
    spec!("email-message", "6.6", req: &["is_multipart"], ts: &["date"], extra: Extra::EmailMessage),
    spec!("file", "6.7", req: NO, ts: &["ctime", "mtime", "atime"], one_of: &["hashes", "name"]),
    spec!("ipv4-addr", "6.8", req: &["value"]),
    spec!("ipv6-addr", "6.9", req: &["value"]),
    spec!("mac-addr", "6.10", req: &["value"], extra: Extra::MacAddr),
    spec!("mutex", "6.11", req: &["name"]),
    spec!("network-traffic", "6.12", req: &["protocols"], ts: &["start", "end"],
          order: &[("start", "end", false)], ints: &[("src_port", 0, 65535), ("dst_port", 0, 65535)],
          one_of: &["src_ref", "dst_ref"], extra: Extra::NetworkTraffic),
    spec!("process", "6.13", req: NO, ts: &["created_time"], extra: Extra::AnyProperty),
    spec!("software", "6.14", req: &["name"]),
    spec!("url", "6.15", req: &["value"]),
    spec!("user-account", "6.16", req: NO,
          ts: &["account_created", "account_expires", "credential_last_changed", "account_first_login",
                "account_last_login"],
          extra: Extra::AnyProperty),
    spec!("windows-registry-key", "6.17", req: NO, ts: &["modified_time"], extra: Extra::WindowsRegistryKey),
    spec!("x509-certificate", "6.18", req: NO, ts: &["validity_not_before", "validity_not_after"],
          extra: Extra::AnyProperty),
    // §7 STIX Meta Objects
    spec!("language-content", "7.1", req: &["object_ref", "contents"], ts: &["object_modified"]),
    spec!("marking-definition", "7.2.1", req: NO, extra: Extra::MarkingDefinition),
    spec!("extension-definition", "7.3", req: &["created_by_ref", "name", "schema", "version", "extension_types"],
          enums: &[("extension_types", EXTENSION_TYPES)]),
];

/// `extension-type-enum` (used by `extension_types`, §7.3, and `extension_type`).
pub(crate) const EXTENSION_TYPES: &[&str] = &[
    "new-sdo",
    "new-sco",
    "new-sro",
    "property-extension",
    "toplevel-property-extension",
];

/// The table entry for `object_type`.
pub(crate) fn type_spec(object_type: &str) -> Option<&'static TypeSpec> {
    TYPES.iter().find(|t| t.name == object_type)
}

/// A predefined SCO extension (§6.x.y): on which type it may appear and what it MUST hold.
pub(crate) struct ExtSpec {
    /// Extension name, the key in `extensions`.
    pub name: &'static str,
    /// The SCO type it extends.
    pub on_type: &'static str,
    /// Spec section.
    pub section: &'static str,
    /// Required properties.
    pub required: &'static [&'static str],
    /// At least one of these MUST be present; `&["*"]`: at least one property of any name.
    pub one_of: &'static [&'static str],
    /// Integer ranges.
    pub ints: &'static [(&'static str, i64, i64)],
    /// Closed enumerations.
    pub enums: &'static [(&'static str, &'static [&'static str])],
    /// Timestamp properties.
    pub timestamps: &'static [&'static str],
}

const ANY: &[&str] = &["*"];

/// The predefined extensions of §6.
pub(crate) static EXTENSIONS: &[ExtSpec] = &[
    ExtSpec {
        name: "archive-ext",
        on_type: "file",
        section: "6.7.2",
        required: &["contains_refs"],
        one_of: NO,
        ints: &[],
        enums: &[],
        timestamps: NO,
    },
    ExtSpec {
        name: "ntfs-ext",
        on_type: "file",
        section: "6.7.3",
        required: NO,
        one_of: &["sid", "alternate_data_streams"],
        ints: &[],
        enums: &[],
        timestamps: NO,
    },
    ExtSpec {
        name: "pdf-ext",
        on_type: "file",
        section: "6.7.4",
        required: NO,
        one_of: ANY,
        ints: &[],
        enums: &[],
        timestamps: NO,
    },
    ExtSpec {
        name: "raster-image-ext",
        on_type: "file",
        section: "6.7.5",
        required: NO,
        one_of: ANY,
        ints: &[],
        enums: &[],
        timestamps: NO,
    },
    ExtSpec {
        name: "windows-pebinary-ext",
        on_type: "file",
        section: "6.7.6",
        required: &["pe_type"],
        one_of: NO,
        ints: &[],
        enums: &[],
        timestamps: &["time_date_stamp"],
    },
    ExtSpec {
        name: "http-request-ext",
        on_type: "network-traffic",
        section: "6.12.2",
        required: &["request_method", "request_value"],
        one_of: NO,
        ints: &[],
        enums: &[],
        timestamps: NO,
    },
    ExtSpec {
        name: "icmp-ext",
        on_type: "network-traffic",
        section: "6.12.3",
        required: &["icmp_type_hex", "icmp_code_hex"],
        one_of: NO,
        ints: &[],
        enums: &[],
        timestamps: NO,
    },
    ExtSpec {
        name: "socket-ext",
        on_type: "network-traffic",
        section: "6.12.4",
        required: &["address_family"],
        one_of: NO,
        ints: &[],
        enums: &[
            (
                "address_family",
                &[
                    "AF_UNSPEC",
                    "AF_INET",
                    "AF_IPX",
                    "AF_APPLETALK",
                    "AF_NETBIOS",
                    "AF_INET6",
                    "AF_IRDA",
                    "AF_BTH",
                ],
            ),
            (
                "socket_type",
                &[
                    "SOCK_STREAM",
                    "SOCK_DGRAM",
                    "SOCK_RAW",
                    "SOCK_RDM",
                    "SOCK_SEQPACKET",
                ],
            ),
        ],
        timestamps: NO,
    },
    ExtSpec {
        name: "tcp-ext",
        on_type: "network-traffic",
        section: "6.12.5",
        required: NO,
        one_of: ANY,
        ints: &[],
        enums: &[],
        timestamps: NO,
    },
    ExtSpec {
        name: "windows-process-ext",
        on_type: "process",
        section: "6.13.2",
        required: NO,
        one_of: ANY,
        ints: &[],
        enums: &[("integrity_level", &["low", "medium", "high", "system"])],
        timestamps: NO,
    },
    ExtSpec {
        name: "windows-service-ext",
        on_type: "process",
        section: "6.13.3",
        required: NO,
        one_of: ANY,
        ints: &[],
        enums: &[
            (
                "start_type",
                &[
                    "SERVICE_AUTO_START",
                    "SERVICE_BOOT_START",
                    "SERVICE_DEMAND_START",
                    "SERVICE_DISABLED",
                    "SERVICE_SYSTEM_ALERT",
                ],
            ),
            (
                "service_type",
                &[
                    "SERVICE_KERNEL_DRIVER",
                    "SERVICE_FILE_SYSTEM_DRIVER",
                    "SERVICE_WIN32_OWN_PROCESS",
                    "SERVICE_WIN32_SHARE_PROCESS",
                ],
            ),
            (
                "service_status",
                &[
                    "SERVICE_CONTINUE_PENDING",
                    "SERVICE_PAUSE_PENDING",
                    "SERVICE_PAUSED",
                    "SERVICE_RUNNING",
                    "SERVICE_START_PENDING",
                    "SERVICE_STOP_PENDING",
                    "SERVICE_STOPPED",
                ],
            ),
        ],
        timestamps: NO,
    },
    ExtSpec {
        name: "unix-account-ext",
        on_type: "user-account",
        section: "6.16.2",
        required: NO,
        one_of: ANY,
        ints: &[],
        enums: &[],
        timestamps: NO,
    },
];

/// The predefined extension named `name`.
pub(crate) fn ext_spec(name: &str) -> Option<&'static ExtSpec> {
    EXTENSIONS.iter().find(|e| e.name == name)
}

/// `windows-registry-datatype-enum` (§6.17.2, values[].data_type).
pub(crate) const REGISTRY_DATATYPES: &[&str] = &[
    "REG_NONE",
    "REG_SZ",
    "REG_EXPAND_SZ",
    "REG_BINARY",
    "REG_DWORD",
    "REG_DWORD_BIG_ENDIAN",
    "REG_DWORD_LITTLE_ENDIAN",
    "REG_LINK",
    "REG_MULTI_SZ",
    "REG_RESOURCE_LIST",
    "REG_FULL_RESOURCE_DESCRIPTION",
    "REG_RESOURCE_REQUIREMENTS_LIST",
    "REG_QWORD",
    "REG_INVALID_TYPE",
];

/// What a reference may point at.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// Only these types.
    Types(&'static [&'static str]),
    /// An SDO or a custom object (§5.2 sighting_of_ref).
    Sdo,
    /// An SCO (or a custom object, which may be an SCO defined by an extension).
    Sco,
    /// An SDO, an SCO or a custom object (§5.1 source_ref/target_ref).
    SdoOrSco,
    /// An SCO, an SRO or a custom object (§4.14 object_refs).
    ScoOrSro,
}

/// `(context, property, target, section)`. The context is the object's `type` for top-level
/// properties, or the name of the enclosing property (e.g. `granular_markings`,
/// `archive-ext`, `body_multipart`) for nested ones; `*` matches any top-level object.
pub(crate) static REF_RULES: &[(&str, &str, Target, &str)] = &[
    ("*", "created_by_ref", Target::Types(&["identity"]), "3.2"),
    (
        "*",
        "object_marking_refs",
        Target::Types(&["marking-definition"]),
        "3.2",
    ),
    (
        "granular_markings",
        "marking_ref",
        Target::Types(&["marking-definition"]),
        "7.2.3",
    ),
    (
        "malware",
        "sample_refs",
        Target::Types(&["file", "artifact"]),
        "4.11",
    ),
    (
        "malware",
        "operating_system_refs",
        Target::Types(&["software"]),
        "4.11",
    ),
    (
        "malware-analysis",
        "host_vm_ref",
        Target::Types(&["software"]),
        "4.12",
    ),
    (
        "malware-analysis",
        "operating_system_ref",
        Target::Types(&["software"]),
        "4.12",
    ),
    (
        "malware-analysis",
        "installed_software_refs",
        Target::Types(&["software"]),
        "4.12",
    ),
    (
        "malware-analysis",
        "sample_ref",
        Target::Types(&["file", "network-traffic", "artifact"]),
        "4.12",
    ),
    ("malware-analysis", "analysis_sco_refs", Target::Sco, "4.12"),
    ("observed-data", "object_refs", Target::ScoOrSro, "4.14"),
    ("relationship", "source_ref", Target::SdoOrSco, "5.1"),
    ("relationship", "target_ref", Target::SdoOrSco, "5.1"),
    ("sighting", "sighting_of_ref", Target::Sdo, "5.2"),
    (
        "sighting",
        "observed_data_refs",
        Target::Types(&["observed-data"]),
        "5.2",
    ),
    (
        "sighting",
        "where_sighted_refs",
        Target::Types(&["identity", "location"]),
        "5.2",
    ),
    (
        "directory",
        "contains_refs",
        Target::Types(&["file", "directory"]),
        "6.3",
    ),
    (
        "domain-name",
        "resolves_to_refs",
        Target::Types(&["ipv4-addr", "ipv6-addr", "domain-name"]),
        "6.4",
    ),
    (
        "email-addr",
        "belongs_to_ref",
        Target::Types(&["user-account"]),
        "6.5",
    ),
    (
        "email-message",
        "from_ref",
        Target::Types(&["email-addr"]),
        "6.6",
    ),
    (
        "email-message",
        "sender_ref",
        Target::Types(&["email-addr"]),
        "6.6",
    ),
    (
        "email-message",
        "to_refs",
        Target::Types(&["email-addr"]),
        "6.6",
    ),
    (
        "email-message",
        "cc_refs",
        Target::Types(&["email-addr"]),
        "6.6",
    ),
    (
        "email-message",
        "bcc_refs",
        Target::Types(&["email-addr"]),
        "6.6",
    ),
    (
        "email-message",
        "raw_email_ref",
        Target::Types(&["artifact"]),
        "6.6",
    ),
    (
        "body_multipart",
        "body_raw_ref",
        Target::Types(&["artifact", "file"]),
        "6.6.2",
    ),
    (
        "file",
        "parent_directory_ref",
        Target::Types(&["directory"]),
        "6.7",
    ),
    ("file", "contains_refs", Target::Sco, "6.7"),
    ("file", "content_ref", Target::Types(&["artifact"]), "6.7"),
    (
        "archive-ext",
        "contains_refs",
        Target::Types(&["file", "directory"]),
        "6.7.2",
    ),
    (
        "ipv4-addr",
        "resolves_to_refs",
        Target::Types(&["mac-addr"]),
        "6.8",
    ),
    (
        "ipv4-addr",
        "belongs_to_refs",
        Target::Types(&["autonomous-system"]),
        "6.8",
    ),
    (
        "ipv6-addr",
        "resolves_to_refs",
        Target::Types(&["mac-addr"]),
        "6.9",
    ),
    (
        "ipv6-addr",
        "belongs_to_refs",
        Target::Types(&["autonomous-system"]),
        "6.9",
    ),
    (
        "network-traffic",
        "src_ref",
        Target::Types(&["ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"]),
        "6.12",
    ),
    (
        "network-traffic",
        "dst_ref",
        Target::Types(&["ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"]),
        "6.12",
    ),
    (
        "network-traffic",
        "src_payload_ref",
        Target::Types(&["artifact"]),
        "6.12",
    ),
    (
        "network-traffic",
        "dst_payload_ref",
        Target::Types(&["artifact"]),
        "6.12",
    ),
    (
        "network-traffic",
        "encapsulates_refs",
        Target::Types(&["network-traffic"]),
        "6.12",
    ),
    (
        "network-traffic",
        "encapsulated_by_ref",
        Target::Types(&["network-traffic"]),
        "6.12",
    ),
    (
        "http-request-ext",
        "message_body_data_ref",
        Target::Types(&["artifact"]),
        "6.12.2",
    ),
    (
        "process",
        "opened_connection_refs",
        Target::Types(&["network-traffic"]),
        "6.13",
    ),
    (
        "process",
        "creator_user_ref",
        Target::Types(&["user-account"]),
        "6.13",
    ),
    ("process", "image_ref", Target::Types(&["file"]), "6.13"),
    ("process", "parent_ref", Target::Types(&["process"]), "6.13"),
    ("process", "child_refs", Target::Types(&["process"]), "6.13"),
    (
        "windows-service-ext",
        "service_dll_refs",
        Target::Types(&["file"]),
        "6.13.3",
    ),
    (
        "windows-registry-key",
        "creator_user_ref",
        Target::Types(&["user-account"]),
        "6.17",
    ),
];

/// The target rule for property `prop` in `context` (`top`: `context` is the object type).
pub(crate) fn ref_rule(context: &str, prop: &str, top: bool) -> Option<(Target, &'static str)> {
    REF_RULES
        .iter()
        .find(|(c, p, _, _)| *p == prop && (*c == context || (top && *c == "*")))
        .map(|(_, _, t, s)| (*t, *s))
}

/// `hash-algorithm-ov` (§10, used by §2.7) with the hex length each algorithm's value MUST have
/// (`None`: not hex, format not checked here).
pub(crate) const HASH_ALGORITHMS: &[(&str, Option<usize>)] = &[
    ("MD5", Some(32)),
    ("SHA-1", Some(40)),
    ("SHA-256", Some(64)),
    ("SHA-512", Some(128)),
    ("SHA3-256", Some(64)),
    ("SHA3-512", Some(128)),
    ("SSDEEP", None),
    ("TLSH", None),
];
