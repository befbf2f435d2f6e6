"""The write database: Azure SQL through pyodbc in production, embedded SQLite locally."""
