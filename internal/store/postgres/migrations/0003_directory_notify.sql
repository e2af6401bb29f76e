-- Every committed change of the directory tells every node (NOTIFY
-- hve_directory, with the schema, as the revocations do), so that their
-- directory caches start over: a statement trigger on each table that
-- directory reads are cached from, whatever code path writes it. PostgreSQL
-- delivers a notification only when its transaction commits, and one per
-- transaction however many statements send the same one.
CREATE FUNCTION hve_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('hve_directory', current_schema());
	RETURN NULL;
END
$$;

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['tenants', 'domains', 'addresses', 'mailboxes', 'accounts', 'dist_groups', 'group_members',
		'auth_policies', 'security_groups', 'security_group_members', 'ca_policies', 'apps', 'app_secrets', 'issuers', 'routes']
	LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
			FOR EACH STATEMENT EXECUTE FUNCTION hve_directory_changed()', t || '_changed', t);
	END LOOP;
END
$$;
