-- Personas: one source of truth for LLM personas, versioned, audited, one default per namespace.
-- migrate:up
CREATE TABLE __schema__.personas (
    namespace text NOT NULL,
    name text NOT NULL CONSTRAINT personas_name_slug CHECK (name ~ '^[a-z0-9-]{1,100}$'),
    display_name text NOT NULL,
    role text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    system_prompt text NOT NULL CONSTRAINT personas_system_prompt_set CHECK (system_prompt <> ''),
    context text NOT NULL DEFAULT '',
    expertise text[] NOT NULL DEFAULT '{}',
    personality_traits jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT personas_traits_object CHECK (jsonb_typeof(personality_traits) = 'object'),
    capabilities jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT personas_capabilities_object CHECK (jsonb_typeof(capabilities) = 'object'),
    response_format text NOT NULL DEFAULT '',
    persona_type text NOT NULL DEFAULT 'standard',
    is_default boolean NOT NULL DEFAULT false,
    is_active boolean NOT NULL DEFAULT true,
    version integer NOT NULL DEFAULT 1 CONSTRAINT personas_version_positive CHECK (version >= 1),
    created_by text,
    updated_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name),
    -- A soft-deleted persona cannot be the one every user falls back to.
    CONSTRAINT personas_default_is_active CHECK (is_active OR NOT is_default)
);
-- At most one default per namespace, whatever the callers do: the server refuses a second.
CREATE UNIQUE INDEX personas_one_default ON __schema__.personas (namespace) WHERE is_default;
-- persona_list(persona_type=...) pages by name through this index (keyset, never OFFSET).
CREATE INDEX personas_type_name ON __schema__.personas (namespace, persona_type, name);

-- Every version's content (the current one included), so history and rollback are one lookup.
CREATE TABLE __schema__.persona_versions (
    namespace text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    content jsonb NOT NULL,
    actor text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name, version),
    FOREIGN KEY (namespace, name) REFERENCES __schema__.personas (namespace, name) ON DELETE CASCADE
);

-- No foreign key: the audit trail outlives a purged persona.
CREATE TABLE __schema__.persona_audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    name text NOT NULL,
    action text NOT NULL,
    actor text,
    version integer,
    diff jsonb NOT NULL DEFAULT '{}',
    info jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX persona_audit_namespace_id ON __schema__.persona_audit (namespace, id);
CREATE INDEX persona_audit_name_id ON __schema__.persona_audit (namespace, name, id);

CREATE TABLE __schema__.persona_user_preferences (
    namespace text NOT NULL,
    user_id text NOT NULL,
    persona_name text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, user_id),
    FOREIGN KEY (namespace, persona_name)
        REFERENCES __schema__.personas (namespace, name) ON DELETE CASCADE
);
-- The cascade of a purge finds a persona's preferences through this index, not a scan.
CREATE INDEX persona_user_preferences_persona
    ON __schema__.persona_user_preferences (namespace, persona_name);

CREATE TABLE __schema__.persona_metrics (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    name text NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    tags jsonb NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (namespace, name) REFERENCES __schema__.personas (namespace, name) ON DELETE CASCADE
);
CREATE INDEX persona_metrics_lookup ON __schema__.persona_metrics (namespace, name, recorded_at);
-- migrate:down
DROP TABLE __schema__.persona_metrics;
DROP TABLE __schema__.persona_user_preferences;
DROP TABLE __schema__.persona_audit;
DROP TABLE __schema__.persona_versions;
DROP TABLE __schema__.personas;
