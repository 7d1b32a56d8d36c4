"""Reports: turn a results JSON file into an HTML matrix, Prometheus pushgateway metrics and Allure."""
