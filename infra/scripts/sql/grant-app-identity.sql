-- Contained database user for the Function App's managed identity, with the roles the
-- app needs at run time. Idempotent: run it again and nothing changes.
-- sqlcmd variable: APP_IDENTITY_NAME (the user-assigned identity's name, which is its
-- service principal display name in Microsoft Entra ID).
-- Runs as the server's Microsoft Entra admin (Entra-only authentication: no SQL logins).
SET NOCOUNT ON;

IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(APP_IDENTITY_NAME)')
BEGIN
    CREATE USER [$(APP_IDENTITY_NAME)] FROM EXTERNAL PROVIDER;
    PRINT 'created user $(APP_IDENTITY_NAME)';
END;

IF IS_ROLEMEMBER(N'db_datareader', N'$(APP_IDENTITY_NAME)') = 0
    ALTER ROLE db_datareader ADD MEMBER [$(APP_IDENTITY_NAME)];

IF IS_ROLEMEMBER(N'db_datawriter', N'$(APP_IDENTITY_NAME)') = 0
    ALTER ROLE db_datawriter ADD MEMBER [$(APP_IDENTITY_NAME)];

-- Stored procedures, if the schema has any; GRANT is idempotent.
GRANT EXECUTE TO [$(APP_IDENTITY_NAME)];
GO
