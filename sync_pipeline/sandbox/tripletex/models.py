"""The Tripletex object models the sandbox serves: field names, kinds, defaults and limits.

Field lists follow the ``components.schemas`` of the official OpenAPI 2.74.00 document
(the contract tests compare them); length limits come from swagger 2.71.19, the only
version that carries them. The server must run without those documents, hence this copy
of the few facts it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Field kinds. Unset values render as Tripletex does (API-NOTES 3.2): "" for strings,
# 0 for numbers, false for booleans, null for references and dates, [] for arrays.
STR, INT, NUM, BOOL, DATE, ENUM, REF, REFS, STRS, INTS, CHANGES = (
    "str",
    "int",
    "num",
    "bool",
    "date",
    "enum",
    "ref",
    "refs",
    "strs",
    "ints",
    "changes",
)
_DEFAULTS = {STR: "", INT: 0, NUM: 0, BOOL: False, DATE: None, REF: None}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    target: str | None = None  # model name of a reference (or the URL path of an unmodelled one)
    read_only: bool = False
    min_len: int = 0
    max_len: int | None = None
    enum: tuple[str, ...] = ()

    @property
    def default(self):
        if self.kind == ENUM:
            return self.enum[0]
        if self.kind in (REFS, STRS, INTS, CHANGES):
            return []
        return _DEFAULTS[self.kind]


@dataclass
class Model:
    name: str  # table name and URL path segment
    dto: str  # the name Tripletex uses in "fields filter" errors
    fields: dict[str, Field] = field(default_factory=dict)

    def default_fields(self) -> tuple[str, ...]:
        """Default and ``*`` selection: every field but ``changes`` (API-NOTES 3.4/3.6)."""
        return tuple(n for n, f in self.fields.items() if f.kind != CHANGES)


def _model(name: str, dto: str, spec: str) -> Model:
    """Parse ``name:kind[:target][:ro][:min-max][:A|B|C]`` entries, one per line."""
    model = Model(name, dto)
    for line in spec.split():
        parts = line.split(":")
        fname, kind, rest = parts[0], parts[1], parts[2:]
        kw: dict = {}
        for part in rest:
            if part == "ro":
                kw["read_only"] = True
            elif "|" in part:
                kw["enum"] = tuple(part.split("|"))
            elif part[:1].isdigit():
                lo, hi = part.split("-")
                kw["min_len"], kw["max_len"] = int(lo), int(hi)
            else:
                kw["target"] = part
        model.fields[fname] = Field(fname, kind, **kw)
    return model


_COMMON = "id:int version:int changes:changes url:str:ro "
_TEXT = "0-16777215"

# Limits: swagger-2.71.19 definitions Project/Customer/Employee/Department/Address.
PROJECT = _model(
    "project",
    "ProjectDTO",
    _COMMON
    + f"""
    name:str:0-255 number:str:0-100 displayName:str:ro description:str:{_TEXT}
    projectManager:ref:employee department:ref:department mainProject:ref:project
    startDate:date endDate:date customer:ref:customer isClosed:bool isReadyForInvoicing:bool
    isInternal:bool isOffer:bool isFixedPrice:bool projectCategory:ref:project/category
    deliveryAddress:ref:address boligmappaAddress:ref:address
    displayNameFormat:enum:NAME_STANDARD|NAME_INCL_CUSTOMER_NAME|NAME_INCL_PARENT_NAME|NAME_INCL_PARENT_NUMBER|NAME_INCL_PARENT_NAME_AND_NUMBER
    reference:str:0-255 externalAccountsNumber:str:0-100 discountPercentage:num:ro
    vatType:ref:ledger/vatType fixedprice:num contributionMarginPercent:num:ro
    numberOfSubProjects:int:ro numberOfProjectParticipants:int:ro
    orderLines:refs:project/orderline:ro currency:ref:currency markUpOrderLines:num
    markUpFeesEarned:num isPriceCeiling:bool priceCeilingAmount:num
    projectHourlyRates:refs:project/hourlyRates forParticipantsOnly:bool
    participants:refs:projectParticipant contact:ref:contact attention:ref:contact
    invoiceComment:str:{_TEXT} invoicingPlan:refs:invoice:ro preliminaryInvoice:ref:invoice
    generalProjectActivitiesPerProjectOnly:bool projectActivities:refs:project/projectActivity
    hierarchyNameAndNumber:str:ro invoiceDueDate:int
    invoiceDueDateType:enum:DAYS|MONTHS|RECURRING_DAY_OF_MONTH
    invoiceReceiverEmail:str:0-254 overdueNoticeEmail:str:0-254
    accessType:enum:NONE|READ|WRITE useProductNetPrice:bool
    ignoreCompanyProductDiscountAgreement:bool customerName:str:ro hierarchyLevel:int:ro
    projectManagerNameAndNumber:str:ro totalInvoicedOnAccountAmountAbsoluteCurrency:num:ro
    invoiceOnAccountVatHigh:bool invoiceReserveTotalAmountCurrency:num:ro
    accountingDimensionValues:refs:ledger/accountingDimensionValue
    """,
)

CUSTOMER = _model(
    "customer",
    "CustomerDTO",
    _COMMON
    + f"""
    name:str:0-255 organizationNumber:str:0-100 globalLocationNumber:int supplierNumber:int
    customerNumber:int isSupplier:bool isCustomer:bool:ro isInactive:bool
    accountManager:ref:employee department:ref:department email:str:0-254
    invoiceEmail:str:0-254 overdueNoticeEmail:str:0-254 bankAccounts:strs
    phoneNumber:str:0-100 phoneNumberMobile:str:0-100 description:str:{_TEXT}
    language:enum:NO|EN displayName:str isPrivateIndividual:bool singleCustomerInvoice:bool
    invoiceSendMethod:enum:EMAIL|EHF|EFAKTURA|AVTALEGIRO|VIPPS|PAPER|MANUAL
    emailAttachmentType:enum:LINK|ATTACHMENT postalAddress:ref:address
    physicalAddress:ref:address deliveryAddress:ref:deliveryAddress
    category1:ref:customer/category category2:ref:customer/category
    category3:ref:customer/category invoicesDueIn:int
    invoicesDueInType:enum:DAYS|MONTHS|RECURRING_DAY_OF_MONTH currency:ref:currency
    bankAccountPresentation:refs:companyBankAccountPresentation ledgerAccount:ref:ledger/account
    isFactoring:bool invoiceSendSMSNotification:bool invoiceSMSNotificationNumber:str:0-100
    isAutomaticSoftReminderEnabled:bool isAutomaticReminderEnabled:bool
    isAutomaticNoticeOfDebtCollectionEnabled:bool discountPercentage:num website:str:0-255
    """,
)

EMPLOYEE = _model(
    "employee",
    "EmployeeDTO",
    _COMMON
    + f"""
    firstName:str:1-100 lastName:str:1-100 displayName:str:ro employeeNumber:str:0-100
    dateOfBirth:date email:str:0-100 phoneNumberMobileCountry:ref:country
    phoneNumberMobile:str:0-100 phoneNumberHome:str:0-100 phoneNumberWork:str:0-100
    nationalIdentityNumber:str:0-100 dnumber:str:0-11 internationalId:ref:internationalId
    bankAccountNumber:str:0-100 iban:str bic:str creditorBankCountryId:int
    usesAbroadPayment:bool userType:enum:STANDARD|EXTENDED|NO_ACCESS
    allowInformationRegistration:bool:ro isContact:bool isProxy:bool:ro comments:str:{_TEXT}
    address:ref:address department:ref:department employments:refs:employee/employment
    holidayAllowanceEarned:ref:holidayAllowanceEarned employeeCategory:ref:employee/category
    isAuthProjectOverviewURL:bool:ro pictureId:int:ro companyId:int:ro
    vismaConnect2FAactive:bool:ro
    """,
)

DEPARTMENT = _model(
    "department",
    "DepartmentDTO",
    _COMMON
    + """
    name:str:0-255 departmentNumber:str:0-100 departmentManager:ref:employee
    displayName:str:ro isInactive:bool businessActivityTypeId:int:ro
    """,
)

PARTICIPANT = _model(
    "projectParticipant",
    "ProjectParticipantDTO",
    _COMMON + "project:ref:project employee:ref:employee adminAccess:bool",
)

_ADDRESS_FIELDS = """
    addressLine1:str:0-255 addressLine2:str:0-255 postalCode:str:0-100 city:str:0-100
    country:ref:country displayName:str:ro addressAsString:str:ro
    displayNameInklMatrikkel:str:ro knr:int gnr:int bnr:int fnr:int snr:int unitNumber:str:0-255
"""
ADDRESS = _model("address", "AddressDTO", _COMMON + _ADDRESS_FIELDS)
DELIVERY_ADDRESS = _model(
    "deliveryAddress",
    "DeliveryAddressDTO",
    _COMMON + _ADDRESS_FIELDS + " name:str:0-255 customerVendor:ref:company",
)

COMPANY = _model(
    "company",
    "CompanyDTO",
    _COMMON
    + """
    name:str displayName:str:ro startDate:date endDate:date organizationNumber:str email:str
    phoneNumber:str phoneNumberMobile:str faxNumber:str address:ref:address
    type:enum:AS|NONE|ENK|NUF|ANS|DA currency:ref:currency accountantOrSimilar:bool:ro
    companyMigration:enum:NONE|AGRO:ro invoiceShowDeliveryDate:bool:ro
    """,
)

SESSION_TOKEN = _model(
    "token/session",
    "SessionTokenDTO",
    _COMMON
    + """
    consumerToken:ref:token/consumer employeeToken:ref:token/employee expirationDate:str
    token:str encryptionKey:str:ro
    """,
)

LOGGED_IN_USER = _model(
    "loggedInUser",
    "LoggedInUserInfoDTO",
    """
    employeeId:int:ro actualEmployeeId:int:ro employee:ref:employee companyId:int:ro
    company:ref:company language:str:ro loggedInWithConnect:bool:ro employeeIsProxy:bool:ro
    """,
)

# The subset of ProjectSettings (OpenAPI 2.74) the sandbox keeps; the sync only needs the
# numbering switches, the others are served with Tripletex's defaults for a new company.
PROJECT_SETTINGS = _model(
    "project/settings",
    "ProjectSettingsDTO",
    """
    approveHourLists:bool approveInvoices:bool markReadyForInvoicing:bool
    historicalInformation:bool projectForecast:bool budgetOnSubcontracts:bool
    projectCategories:bool referenceFee:bool
    sortOrderProjects:enum:SORT_ORDER_NAME_AND_NUMBER|SORT_ORDER_NAME
    autoCloseInvoicedProjects:bool mustApproveRegisteredHours:bool
    autoGenerateProjectNumber:bool autoGenerateStartingNumber:int
    projectNameScheme:enum:NAME_STANDARD|NAME_INCL_CUSTOMER_NAME|NAME_INCL_PARENT_NAME|NAME_INCL_PARENT_NUMBER|NAME_INCL_PARENT_NAME_AND_NUMBER
    onlyProjectMembersCanRegisterInfo:bool
    """,
)

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        PROJECT,
        CUSTOMER,
        EMPLOYEE,
        DEPARTMENT,
        PARTICIPANT,
        ADDRESS,
        DELIVERY_ADDRESS,
        COMPANY,
        SESSION_TOKEN,
        LOGGED_IN_USER,
        PROJECT_SETTINGS,
    )
}

#: Models stored as tables in a company (the others are computed).
TABLES = ("project", "customer", "employee", "department", "projectParticipant", "address")

#: First ``version`` of a new object (API-NOTES 3.2: projects were seen at 0 and customers,
#: like a freshly created supplier, at 1); the same for seeded and POSTed objects.
START_VERSION = {"customer": 1}
