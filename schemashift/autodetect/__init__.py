"""The differ (models against the state the migrations build), how it asks the user, and the `exclude`/
`include_object` filters."""
